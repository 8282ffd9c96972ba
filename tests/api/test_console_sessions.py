"""Console sign-in without a browser: the session cookie's attributes, what ends a
session, the sign-in form's CSRF check and the redirect target after sign-in."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import ConsoleSettings, Settings
from schemas.messages import utcnow
from schemas.tables import ConsoleSessionRow
from services.api.security.tokens import Role, revoke_tokens

pytestmark = pytest.mark.postgres

Tokens = Callable[..., dict[str, str]]


def _secret(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _sign_in(client: httpx.AsyncClient, token: str, next_: str = "") -> httpx.Response:
    form = await client.get("/console/sign-in")
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match is not None
    return await client.post(
        "/console/sign-in",
        data={"csrf_token": match.group(1), "token": token, "next": next_},
    )


@pytest.fixture
def console_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"console": ConsoleSettings(session_ttl_minutes=30)})


async def test_the_session_cookie_and_what_ends_a_session(
    app_client_factory: Callable[..., Any],
    console_settings: Settings,
    token_for: Tokens,
    sessions: sessionmaker[Session],
    tag: str,
) -> None:
    token = _secret(token_for(Role.MODERATOR, name=f"alice-{tag}"))
    async with app_client_factory(app_settings=console_settings) as client:
        response = await _sign_in(client, token)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/queue"
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("depdetect_session=")
        )
        attributes = {a.strip().lower() for a in cookie.split(";")}
        assert {"httponly", "samesite=strict", "max-age=1800", "path=/"} <= attributes
        assert "secure" not in attributes  # plain http here; https below
        secret = cookie.split(";")[0].split("=", 1)[1]
        with sessions() as session:
            stored = session.scalars(select(ConsoleSessionRow.session_sha256)).all()
        assert len(stored) == 1 and secret not in stored[0]  # only a hash is kept

        assert (await client.get("/console/queue")).status_code == 200
        # Signing out ends it on the server: the old cookie no longer works.
        page = await client.get("/console/queue")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        out = await client.post("/console/sign-out", data={"csrf_token": csrf.group(1)})
        assert out.status_code == 303
        client.cookies.set("depdetect_session", secret)
        refused = await client.get("/console/queue")
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/console/sign-in")

        # Revoking the token ends its sessions; so does expiry.
        client.cookies.clear()
        await _sign_in(client, token)
        assert (await client.get("/console/queue")).status_code == 200
        with sessions.begin() as session:
            revoke_tokens(session=session, name_or_id=f"alice-{tag}")
        assert (await client.get("/console/queue")).status_code == 303
    other = _secret(token_for(Role.MODERATOR, name=f"bob-{tag}"))
    async with app_client_factory(app_settings=console_settings) as client:
        await _sign_in(client, other)
        assert (await client.get("/console/queue")).status_code == 200
        with sessions.begin() as session:
            session.execute(
                update(ConsoleSessionRow).values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert (await client.get("/console/queue")).status_code == 303
        # Sessions long past their end are deleted at the next sign-in.
        with sessions.begin() as session:
            session.execute(
                update(ConsoleSessionRow).values(expires_at=utcnow() - timedelta(days=2))
            )
        await _sign_in(client, other)
        with sessions() as session:
            assert len(session.scalars(select(ConsoleSessionRow)).all()) == 1


async def test_cookies_are_secure_over_https_and_sign_in_checks_its_form(
    app_client_factory: Callable[..., Any], console_settings: Settings, token_for: Tokens
) -> None:
    token = _secret(token_for(Role.ANALYST))
    app = app_client_factory(app_settings=console_settings)
    async with app as client:
        client.base_url = httpx.URL("https://api.test")
        response = await _sign_in(client, token, next_="//evil.example/steal")
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("depdetect_session=")
        )
        assert "secure" in {a.strip().lower() for a in cookie.split(";")}
        # An analyst lands on the dashboard; a foreign "next" is ignored.
        assert response.headers["location"] == "/dashboard"

        forged = await client.post("/console/sign-in", data={"token": token})
        assert forged.status_code == 403
        wrong = await _sign_in(client, "ddt_not-a-token")
        assert wrong.status_code == 303 and "error=" in wrong.headers["location"]
