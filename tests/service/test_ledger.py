"""The ledger itself: it must see a loss, a misplaced row, a missing review event and
repeated review events and dead letters (counted, not hidden by a set)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from depdetect.settings import Settings, StoreUnflagged
from schemas.messages import DeadLetter, ReviewRequest, SubmittedText, encode
from schemas.migrate import upgrade
from schemas.tables import ResultRow
from services.kafka.admin import ensure_topics
from tests.support.ledger import Ledger

pytestmark = pytest.mark.kafka


def _row(message_id: str, position: tuple[str, int, int], flagged: bool) -> ResultRow:
    now = datetime.now(UTC)
    return ResultRow(
        message_id=message_id,
        score=0.9 if flagged else 0.1,
        label="x",
        flagged=flagged,
        threshold=0.5,
        model_version="m",
        language="en",
        language_detected=False,
        source="test",
        submitted_at=now,
        classified_at=now,
        source_topic=position[0],
        source_partition=position[1],
        source_offset=position[2],
        review_published_at=now if flagged else None,
    )


def _review(message_id: str) -> bytes:
    return encode(
        ReviewRequest(
            review_id=f"review-{message_id}",
            message_id=message_id,
            result_id=1,
            result_url="http://x/results/1",
            score=0.9,
            threshold=0.5,
            language="en",
            source="test",
            model_version="m",
            flagged_at=datetime.now(UTC),
        )
    )


def _letter(position: tuple[str, int, int]) -> bytes:
    return encode(
        DeadLetter(
            reason="test",
            error_type="ContractError",
            source_topic=position[0],
            source_partition=position[1],
            source_offset=position[2],
            payload_b64=base64.b64encode(b"x").decode(),
        )
    )


async def test_the_ledger_sees_losses_and_counts_duplicates(
    make_settings: Callable[..., Settings], sqlite_url: str
) -> None:
    settings = make_settings(storage={"store_unflagged": StoreUnflagged.SCORE})
    with pytest.raises(ValueError, match="store_unflagged=score"):
        Ledger(make_settings())
    await ensure_topics(settings.kafka)
    upgrade(sqlite_url)
    ledger = Ledger(settings)
    sent = await ledger.publish(
        [
            *(SubmittedText(message_id=f"v{i}", text=f"text {i}") for i in range(5)),
            (b"{not json", b"bad-1"),
        ]
    )
    v = {s.message_id: s.position for s in sent if s.message_id}
    poison = next(s.position for s in sent if s.poison)

    engine = create_engine(sqlite_url)
    with Session(engine) as session:
        session.add_all(
            [
                _row("v0", v["v0"], flagged=True),  # reviewed twice
                _row("v1", v["v1"], flagged=True),  # never reviewed
                _row("v2", v["v2"], flagged=False),
                _row("v3", (v["v3"][0], v["v3"][1], v["v3"][2] + 1000), flagged=False),
                # v4: lost
                _row("stranger", ("elsewhere", 0, 0), flagged=False),
            ]
        )
        session.commit()
    engine.dispose()

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in (_review("v0"), _review("v0"), _review("v2")):
            await producer.send_and_wait(settings.kafka.review_topic, value)
        for value in (_letter(poison), _letter(poison), _letter(poison), _letter(v["v2"])):
            await producer.send_and_wait(settings.kafka.dead_letter_topic, value)
    finally:
        await producer.stop()

    report = await ledger.check()
    assert report.lost == ["v4"]
    assert report.misplaced_rows == ["v3"]
    assert report.unexpected_rows == ["stranger"]
    assert report.unreviewed_flags == ["v1"]
    assert report.spurious_reviews == ["v2"]
    assert report.duplicate_reviews == 1
    assert report.duplicate_dead_letters == 2
    assert report.unexpected_dead_letters == [v["v2"]]
    assert report.missing_dead_letters == []
    problems = report.problems()
    assert len(problems) == 8, problems
    assert any("duplicate review events: 1" in p for p in problems)
    assert any("duplicate dead letters: 2" in p for p in problems)
    assert len(report.problems(max_duplicate_reviews=1, max_duplicate_dead_letters=2)) == 6
