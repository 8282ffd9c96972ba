"""Every request needs a token; each role sees only what it may; failures carry no data."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from schemas.tables import ApiTokenRow
from services.api.security.tokens import Role, hash_token, revoke_tokens

pytestmark = pytest.mark.postgres

SECRET_TEXT = "a text only moderators may read"


def _endpoints(rid: int) -> list[tuple[str, str]]:
    return [
        ("GET", "/results"),
        ("GET", f"/results/{rid}"),
        ("GET", f"/results/{rid}/decisions"),
        ("POST", f"/results/{rid}/decisions"),
        ("GET", "/aggregates/flags"),
        ("GET", "/aggregates/outcomes"),
        ("GET", "/aggregates/scores"),
        ("GET", "/aggregates/reviews"),
    ]


#: Which role may call which endpoint (by method and first path segments).
ALLOWED = {
    Role.MODERATOR: {
        "GET /results",
        "GET /results/{id}",
        "GET /results/{id}/decisions",
        "POST /results/{id}/decisions",
        "GET /aggregates/flags",
        "GET /aggregates/outcomes",
        "GET /aggregates/scores",
        "GET /aggregates/reviews",
    },
    Role.ADMIN: {
        "GET /results",
        "GET /results/{id}",
        "GET /results/{id}/decisions",
        "POST /results/{id}/decisions",
        "GET /aggregates/flags",
        "GET /aggregates/outcomes",
        "GET /aggregates/scores",
        "GET /aggregates/reviews",
    },
    Role.ANALYST: {
        "GET /aggregates/flags",
        "GET /aggregates/outcomes",
        "GET /aggregates/scores",
        "GET /aggregates/reviews",
    },
}


def _key(method: str, path: str, rid: int) -> str:
    return f"{method} {path.replace(str(rid), '{id}')}"


async def _call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    body = {"decision": "not_indicators"} if method == "POST" else None
    return await client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize("role", list(Role))
async def test_each_role_sees_what_it_may_and_no_text_elsewhere(
    client: httpx.AsyncClient,
    token_for: Callable[[Role], dict[str, str]],
    insert_result: Callable[..., int],
    role: Role,
) -> None:
    rid = insert_result(text=SECRET_TEXT)
    headers = token_for(role)
    for method, path in _endpoints(rid):
        response = await _call(client, method, path, headers)
        if _key(method, path, rid) in ALLOWED[role]:
            assert response.status_code in (200, 201), (method, path, response.text)
        else:
            assert response.status_code == 403, (method, path, response.text)
            assert set(response.json()) == {"detail"}
        if role is Role.ANALYST:
            assert SECRET_TEXT not in response.text
            assert "text" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer ddt_not-a-real-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "ddt_no-scheme"},
    ],
    ids=["none", "empty", "unknown", "basic", "no-scheme"],
)
async def test_unauthenticated_requests_get_401_and_no_data(
    client: httpx.AsyncClient,
    insert_result: Callable[..., int],
    headers: dict[str, str],
) -> None:
    rid = insert_result(text=SECRET_TEXT)
    for method, path in [*_endpoints(rid), ("GET", "/results?limit=0"), ("GET", "/nope")]:
        response = await _call(client, method, path, headers)
        if path == "/nope":
            assert response.status_code == 404
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert SECRET_TEXT not in response.text
        assert set(response.json()) == {"detail"}


async def test_revoked_token_is_refused(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    sessions: sessionmaker[Session],
    tag: str,
) -> None:
    assert (await client.get("/results", headers=moderator)).status_code == 200
    with sessions.begin() as session:
        revoke_tokens(session=session, name_or_id=f"moderator-{tag}")
    response = await client.get("/results", headers=moderator)
    assert response.status_code == 401
    assert response.json()["detail"] == "the token is unknown or revoked"


async def test_tokens_are_stored_hashed(
    moderator: dict[str, str],
    sessions: sessionmaker[Session],
) -> None:
    secret = moderator["Authorization"].removeprefix("Bearer ")
    with sessions() as session:
        rows = session.query(ApiTokenRow).all()
    assert [r.token_sha256 for r in rows] == [hash_token(secret)]
    assert all(secret not in (r.name, r.role, r.token_sha256) for r in rows)


async def test_docs_need_a_token_too(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await client.get(path)).status_code == 404


async def test_moderators_decide_only_as_themselves_admins_for_anyone(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    admin: dict[str, str],
    insert_result: Callable[..., int],
    tag: str,
) -> None:
    rid = insert_result()
    response = await client.post(
        f"/results/{rid}/decisions",
        json={"decision": "escalated", "moderator_id": "someone-else"},
        headers=moderator,
    )
    assert response.status_code == 403
    response = await client.post(
        f"/results/{rid}/decisions", json={"decision": "escalated"}, headers=moderator
    )
    assert response.json()["moderator_id"] == f"moderator-{tag}"
    response = await client.post(
        f"/results/{rid}/decisions",
        json={"decision": "confirmed_indicators", "moderator_id": "night-shift-7"},
        headers=admin,
    )
    assert response.status_code == 201
    assert response.json()["moderator_id"] == "night-shift-7"


async def test_health_is_open_and_returns_no_data(client) -> None:  # type: ignore[no-untyped-def]
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"live": True, "ready": True, "checks": {"database": True}}
