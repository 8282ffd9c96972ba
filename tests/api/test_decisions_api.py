"""Decisions: idempotent repeats, revisions, bad input, and the outbox to the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import Settings
from schemas.messages import Decision, ModeratorDecision
from schemas.tables import DecisionRow, ResultRow
from services.api.outbox.relay import DecisionRelay
from services.api.outbox.sink import KafkaDecisionSink
from services.results_query.decisions import NOTE_MAX_CHARS
from tests.api.support import RecordingSink, read_decisions

pytestmark = pytest.mark.postgres


async def _wait_published(sessions: sessionmaker[Session], count: int) -> list[DecisionRow]:
    for _ in range(100):
        with sessions() as session:
            rows = list(session.scalars(select(DecisionRow).order_by(DecisionRow.id)))
        if len(rows) == count and all(r.event_published_at for r in rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"decision events not published: {rows}")


async def test_repeat_is_idempotent_and_a_change_is_a_new_revision(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
    sink: RecordingSink,
) -> None:
    rid = insert_result()
    url = f"/results/{rid}/decisions"
    first = await client.post(
        url, json={"decision": "confirmed_indicators", "note": "clear"}, headers=moderator
    )
    assert first.status_code == 201
    again = await client.post(
        url, json={"decision": "confirmed_indicators", "note": "clear"}, headers=moderator
    )
    assert again.status_code == 200
    assert again.json()["decision_id"] == first.json()["decision_id"]
    assert again.json()["revision"] == 1
    changed = await client.post(url, json={"decision": "not_indicators"}, headers=moderator)
    assert changed.status_code == 201
    assert changed.json()["revision"] == 2
    back = await client.post(
        url, json={"decision": "confirmed_indicators", "note": "clear"}, headers=moderator
    )
    assert back.json()["revision"] == 3

    history = (await client.get(url, headers=moderator)).json()
    assert history["count"] == 3
    assert [d["decision"] for d in history["data"]] == [
        "confirmed_indicators",
        "not_indicators",
        "confirmed_indicators",
    ]
    detail = (await client.get(f"/results/{rid}", headers=moderator)).json()
    assert detail["review_status"] == "decided"
    assert detail["decision"] == "confirmed_indicators"
    assert [d["revision"] for d in detail["decisions"]] == [1, 2, 3]

    await _wait_published(sessions, 3)
    assert [(e.revision, e.decision) for e in sink.events] == [
        (1, Decision.CONFIRMED),
        (2, Decision.NOT_INDICATORS),
        (3, Decision.CONFIRMED),
    ]


async def test_client_decision_id_makes_retries_safe(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    rid, other = insert_result(), insert_result()
    body = {"decision": "escalated", "decision_id": "retry-key-1"}
    first = await client.post(f"/results/{rid}/decisions", json=body, headers=moderator)
    second = await client.post(f"/results/{rid}/decisions", json=body, headers=moderator)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json() | {
        "event_published_at": second.json()["event_published_at"]
    }
    clash = await client.post(f"/results/{other}/decisions", json=body, headers=moderator)
    assert clash.status_code == 409
    assert "retry-key-1" in clash.json()["detail"]


async def test_concurrent_decisions_get_distinct_revisions(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    rid = insert_result()
    choices = ["confirmed_indicators", "not_indicators", "escalated"] * 3
    responses = await asyncio.gather(
        *[
            client.post(
                f"/results/{rid}/decisions", json={"decision": d, "note": str(i)}, headers=moderator
            )
            for i, d in enumerate(choices)
        ]
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert sorted(r.json()["revision"] for r in responses) == list(range(1, 10))


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"decision": "maybe"}, 422),
        ({"decision": "CONFIRMED_INDICATORS"}, 422),
        ({}, 422),
        ({"decision": "escalated", "note": "x" * (NOTE_MAX_CHARS + 1)}, 422),
        ({"decision": "escalated", "note": "nul \x00 byte"}, 422),
        ({"decision": "escalated", "moderator_id": "two words"}, 422),
        ({"decision": "escalated", "unknown": 1}, 422),
        ({"decision": "escalated", "note": 5}, 422),
        ([1, 2], 422),
    ],
)
async def test_bad_decisions_get_a_clear_4xx(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
    body: Any,
    status: int,
) -> None:
    rid = insert_result()
    response = await client.post(f"/results/{rid}/decisions", json=body, headers=admin)
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    with sessions() as session:
        assert session.scalars(select(DecisionRow)).all() == []


async def test_malformed_json_and_unknown_or_unflagged_results(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    rid = insert_result()
    response = await client.post(
        f"/results/{rid}/decisions",
        content=b"{not json",
        headers=moderator | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    missing = await client.post(
        f"/results/{2**62}/decisions", json={"decision": "escalated"}, headers=moderator
    )
    assert missing.status_code == 404
    unflagged = insert_result(score=0.1)
    response = await client.post(
        f"/results/{unflagged}/decisions", json={"decision": "escalated"}, headers=moderator
    )
    assert response.status_code == 409
    assert "not flagged" in response.json()["detail"]
    longest = await client.post(
        f"/results/{rid}/decisions",
        json={"decision": "escalated", "note": "x" * NOTE_MAX_CHARS},
        headers=moderator,
    )
    assert longest.status_code == 201


@pytest.mark.kafka
async def test_decision_events_reach_the_real_broker_in_revision_order(
    kafka_client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    kafka_app_settings: Settings,
    sessions: sessionmaker[Session],
    tag: str,
) -> None:
    rid = insert_result(message_id=f"msg-{tag}")
    url = f"/results/{rid}/decisions"
    for decision in ("escalated", "escalated", "confirmed_indicators"):
        response = await kafka_client.post(
            url, json={"decision": decision, "note": "n"}, headers=moderator
        )
        assert response.status_code in (200, 201)
    rows = await _wait_published(sessions, 2)
    events = await read_decisions(kafka_app_settings.kafka, expected=2)
    assert [key for key, _ in events] == [f"msg-{tag}".encode()] * 2
    assert [e for _, e in events] == [
        ModeratorDecision(
            decision_id=row.decision_id,
            message_id=f"msg-{tag}",
            result_id=rid,
            decision=Decision(row.decision),
            moderator_id=f"moderator-{tag}",
            note="n",
            revision=row.revision,
            decided_at=row.decided_at,
        )
        for row in rows
    ]


@pytest.mark.kafka
async def test_a_failed_publish_leaves_the_decision_for_the_relay(
    app_client_factory: Callable[..., Any],
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    kafka_app_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    rid = insert_result()
    broken = RecordingSink(fail=True)
    async with app_client_factory(sink=broken, app_settings=kafka_app_settings) as client:
        response = await client.post(
            f"/results/{rid}/decisions", json={"decision": "not_indicators"}, headers=moderator
        )
        # The decision is committed and visible although its event could not be sent.
        assert response.status_code == 201
        await asyncio.sleep(0.5)
        detail = (await client.get(f"/results/{rid}", headers=moderator)).json()
    assert detail["decision"] == "not_indicators"
    assert detail["decisions"][0]["event_published_at"] is None

    # A later relay (another process, or this one once the broker is back) sends it.
    sink = KafkaDecisionSink(kafka_app_settings.kafka)
    try:
        assert await DecisionRelay(sessions=sessions, sink=sink).publish_pending() == 1
        assert await DecisionRelay(sessions=sessions, sink=sink).publish_pending() == 0
    finally:
        await sink.close()
    (row,) = await _wait_published(sessions, 1)
    events = await read_decisions(kafka_app_settings.kafka, expected=1)
    assert [e.decision_id for _, e in events] == [row.decision_id]
    with sessions() as session:
        assert session.get(ResultRow, rid).review_status == "decided"  # type: ignore[union-attr]
