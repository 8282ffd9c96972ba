"""The console's queue over HTTP (no browser): order, filters, counts, and claims that
expire back into the queue."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import Settings
from schemas.messages import utcnow
from schemas.tables import DecisionRow, ReviewClaimRow
from services.api.security.tokens import Role
from tests.api.support import RecordingSink

pytestmark = pytest.mark.postgres


async def _signed_in(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    form = await client.get("/console/sign-in")
    match = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert match is not None
    token = headers["Authorization"].removeprefix("Bearer ")
    response = await client.post(
        "/console/sign-in", data={"csrf_token": match.group(1), "token": token}
    )
    assert response.status_code == 303


def _listed(html: str) -> list[int]:
    """Result ids in the queue table, in page order."""
    body = html.split('<table class="queue">', 1)[1]
    return [int(i) for i in re.findall(r"<tr[^>]*>\s*<td>(?:<a [^>]*>)?(\d+)", body)]


async def test_order_filters_and_counts(
    app_client_factory: Callable[..., Any],
    settings: Settings,
    token_for: Callable[..., dict[str, str]],
    insert_result: Callable[..., int],
) -> None:
    now = utcnow()
    old_low = insert_result(score=0.6, language="de", classified_at=now - timedelta(hours=30))
    new_high = insert_result(score=0.95, language="en", classified_at=now - timedelta(hours=1))
    mid = insert_result(score=0.8, language="en", classified_at=now - timedelta(hours=5))
    insert_result(score=0.2)  # not flagged: never in the queue
    async with app_client_factory(app_settings=settings) as client:
        await _signed_in(client, token_for(Role.MODERATOR))
        page = (await client.get("/console/queue")).text
        assert _listed(page) == [new_high, mid, old_low]
        assert re.search(r"<strong>3</strong> waiting", page)
        assert "oldest waiting 30.0 h" in page
        oldest = (await client.get("/console/queue", params={"order": "oldest"})).text
        assert _listed(oldest) == [old_low, mid, new_high]
        german = (await client.get("/console/queue", params={"language": "de"})).text
        assert _listed(german) == [old_low]
        assert re.search(r"<strong>1</strong> waiting", german)
        bad = await client.get("/console/queue", params={"order": "random"})
        assert bad.status_code == 422


async def test_next_skips_claimed_items_until_the_claim_expires(
    app_client_factory: Callable[..., Any],
    settings: Settings,
    token_for: Callable[..., dict[str, str]],
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
) -> None:
    first = insert_result(score=0.9)
    second = insert_result(score=0.7)
    async with (
        app_client_factory(app_settings=settings) as alice,
        app_client_factory(app_settings=settings) as bob,
    ):
        await _signed_in(alice, token_for(Role.MODERATOR, name="alice"))
        await _signed_in(bob, token_for(Role.ADMIN, name="bob"))
        taken = await alice.get("/console/next")
        assert taken.headers["location"].startswith(f"/console/items/{first}")
        assert (
            (await bob.get("/console/next"))
            .headers["location"]
            .startswith(f"/console/items/{second}")
        )
        # Both items are claimed: a third look finds nothing free.
        carol_headers = token_for(Role.MODERATOR, name="carol")
        async with app_client_factory(app_settings=settings) as carol:
            await _signed_in(carol, carol_headers)
            assert "empty=true" in (await carol.get("/console/next")).headers["location"]
            with sessions.begin() as session:
                session.execute(
                    update(ReviewClaimRow)
                    .where(ReviewClaimRow.result_id == first)
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
            back = await carol.get("/console/next")
            assert back.headers["location"].startswith(f"/console/items/{first}")


async def test_urgent_decision_with_the_broker_down_is_kept_and_said(
    app_client_factory: Callable[..., Any],
    settings: Settings,
    token_for: Callable[..., dict[str, str]],
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
) -> None:
    """The decision is committed (outbox); the page says the event is not out yet."""
    item = insert_result(score=0.9)
    down = RecordingSink(fail=True)
    async with app_client_factory(app_settings=settings, sink=down) as client:
        await _signed_in(client, token_for(Role.MODERATOR, name="alice"))
        page = await client.get(f"/console/items/{item}")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        response = await client.post(
            f"/console/items/{item}/decide",
            data={"csrf_token": csrf.group(1), "decision": "escalated", "note": "plan mentioned"},
        )
        assert response.status_code == 303
        assert "published=false" in response.headers["location"]
        queue = (await client.get(response.headers["location"], follow_redirects=True)).text
        assert "the broker is unreachable: the urgent event is queued and retried" in queue
        assert f'URGENT</strong> result <a href="/console/items/{item}">{item}</a>' in queue
    with sessions() as session:
        row = session.scalars(select(DecisionRow)).one()
    assert (row.decision, row.note, row.event_published_at) == ("escalated", "plan mentioned", None)
