"""The order of effects inside one batch, with a fake model and a fake broker.

These pin the delivery rules that the integration tests exercise end to end:
results are written before review events, the outbox is marked only after the
broker confirmed, and a replay after any failure yields no second row."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from depdetect.settings import StoreUnflagged
from schemas.errors import TransientError
from schemas.messages import DeadLetter, ReviewRequest, decode
from schemas.tables import ResultRow
from services.classifier.batch import BatchProcessor
from services.inference.runner import Scored
from services.storage.results import ResultStore
from tests.service.fakes import Record, batch_processor


class FakeRunner:
    model_version = "m-fake"
    threshold = 0.5

    def score(self, texts: list[str]) -> list[Scored]:
        return [Scored(0.9 if "sad" in t else 0.1, len(t.split())) for t in texts]


class FakeBroker:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.fail_topic: str | None = None

    async def publish(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        if topic == self.fail_topic:
            raise ConnectionError("broker down")
        self.sent.append((topic, value, key))


def _record(offset: int, text: str | None, **extra: Any) -> Record:
    if text is None:
        return Record(b"\xff", offset)
    return Record(json.dumps({"message_id": f"m{offset}", "text": text, **extra}).encode(), offset)


@pytest.fixture
def parts(sqlite_url: str) -> tuple[BatchProcessor, FakeBroker, ResultStore]:
    broker = FakeBroker()
    processor = batch_processor(sqlite_url, runner=FakeRunner(), publish=broker.publish)
    return processor, broker, processor.store


async def _write_without_reviews(
    processor: BatchProcessor, broker: FakeBroker, batch: list[Record]
) -> None:
    """Process ``batch`` while the review topic is down (rows written, reviews left in the
    outbox, the batch failed), then bring the topic back."""
    broker.fail_topic = processor.settings.kafka.review_topic
    with pytest.raises(ConnectionError):
        await processor.process(batch)
    broker.fail_topic = None


def _review_ids(processor: BatchProcessor, broker: FakeBroker) -> list[str]:
    topic = processor.settings.kafka.review_topic
    return sorted(decode(ReviewRequest, v).message_id for t, v, _ in broker.sent if t == topic)


def _rows(store: ResultStore) -> list[ResultRow]:
    from sqlalchemy.orm import Session

    with Session(store.engine) as s:
        return list(s.scalars(select(ResultRow).order_by(ResultRow.id)))


async def test_batch_writes_flags_with_text_and_unflagged_without(parts) -> None:  # type: ignore[no-untyped-def]
    processor, broker, store = parts
    outcome = await processor.process(
        [_record(0, "so sad today", language="en"), _record(1, "a fine day"), _record(2, None)]
    )
    assert (outcome.classified, outcome.flagged, outcome.dead_lettered) == (2, 1, 1)
    rows = sorted(_rows(store), key=lambda r: r.message_id)
    assert [(r.message_id, r.flagged, r.text is not None) for r in rows] == [
        ("m0", True, True),
        ("m1", False, False),
    ]
    assert rows[0].review_published_at is not None
    assert rows[1].language_detected is True
    topics = [t for t, _, _ in broker.sent]
    assert topics.count(processor.settings.kafka.review_topic) == 1
    dead = decode(
        DeadLetter,
        next(v for t, v, _ in broker.sent if t == processor.settings.kafka.dead_letter_topic),
    )
    assert dead.source_offset == 2 and "UTF-8" in dead.reason


async def test_store_nothing_keeps_no_row_for_unflagged(parts, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    processor, _, store = parts
    processor.settings.storage.store_unflagged = StoreUnflagged.NOTHING
    await processor.process([_record(0, "so sad"), _record(1, "fine")])
    assert [r.message_id for r in _rows(store)] == ["m0"]


async def test_review_publish_failure_leaves_outbox_for_the_replay(parts) -> None:  # type: ignore[no-untyped-def]
    processor, broker, store = parts
    batch = [_record(0, "sad one"), _record(1, "sad two"), _record(2, "happy")]
    await _write_without_reviews(processor, broker, batch)
    assert all(r.review_published_at is None for r in _rows(store) if r.flagged)

    await processor.process(batch)  # the redelivery after a nack
    rows = _rows(store)
    assert len(rows) == 3, "no duplicate rows on replay"
    assert all(r.review_published_at is not None for r in rows if r.flagged)
    assert _review_ids(processor, broker) == ["m0", "m1"]


async def test_outbox_sweep_publishes_what_a_crash_left(parts) -> None:  # type: ignore[no-untyped-def]
    processor, broker, store = parts
    await _write_without_reviews(processor, broker, [_record(0, "sad"), _record(1, "sad too")])
    assert await processor.sweep_outbox() == 2
    assert await processor.sweep_outbox() == 0


async def test_a_sweep_and_a_replay_at_once_publish_each_review_once(parts) -> None:  # type: ignore[no-untyped-def]
    # A restarted service sweeps its outbox while it replays the batch it was killed in:
    # both find the same unpublished rows. Each review goes out once, and neither returns
    # before it is confirmed and marked (the replay then commits its offsets).
    processor, broker, store = parts
    batch = [_record(0, "sad one"), _record(1, "sad two"), _record(2, "happy")]
    await _write_without_reviews(processor, broker, batch)
    published = broker.publish

    async def slow_publish(
        topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        await asyncio.sleep(0.2)  # the broker's round trip: long enough for both to start
        await published(topic, value, key, headers)

    processor.publish = slow_publish
    swept, outcome = await asyncio.gather(processor.sweep_outbox(), processor.process(batch))
    assert _review_ids(processor, broker) == ["m0", "m1"]
    assert swept + outcome.reviews_published == 2
    assert all(r.review_published_at is not None for r in _rows(store) if r.flagged)


async def test_transient_database_errors_are_retried(parts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    processor, _, store = parts
    real = store.save_batch
    calls = {"n": 0}

    def flaky(rows: list[dict[str, Any]]) -> Any:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientError("database unavailable")
        return real(rows)

    monkeypatch.setattr(store, "save_batch", flaky)
    await processor.process([_record(0, "sad")])
    assert calls["n"] == 3
    assert len(_rows(store)) == 1


async def test_shutdown_ends_the_retry_loop(parts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    processor, _, store = parts

    def down(rows: list[dict[str, Any]]) -> Any:
        raise TransientError("database unavailable")

    monkeypatch.setattr(store, "save_batch", down)
    processor.retry.stopping.set()
    with pytest.raises(TransientError):
        await asyncio.wait_for(processor.process([_record(0, "sad")]), 5)


async def test_duplicate_message_ids_in_one_batch_make_one_row(parts) -> None:  # type: ignore[no-untyped-def]
    processor, broker, store = parts
    await processor.process(
        [_record(0, "sad", message_id="same"), _record(1, "sad", message_id="same")]
    )
    assert len(_rows(store)) == 1
    engine = create_engine(str(store.engine.url))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ResultRow)).scalar_one() == 1


class WobblyRunner(FakeRunner):
    """Scores one text on either side of the threshold from one attempt to the next, as
    int8 rounding under a different batch padding can for a text near the threshold."""

    def __init__(self, *scores: float) -> None:
        self.scores = list(scores)

    def score(self, texts: list[str]) -> list[Scored]:
        value = self.scores.pop(0)
        return [Scored(value, 3) for _ in texts]


@pytest.mark.parametrize(("first", "replay", "reviews"), [(0.49, 0.51, 0), (0.51, 0.49, 1)])
async def test_a_replay_follows_the_stored_row_not_its_own_score(
    sqlite_url: str, first: float, replay: float, reviews: int
) -> None:
    broker = FakeBroker()
    processor = batch_processor(
        sqlite_url, runner=WobblyRunner(first, replay), publish=broker.publish
    )
    # The first attempt stores its row, then dies before its offset is committed (when
    # it flagged, on the review event): the record is delivered again.
    broker.fail_topic = processor.settings.kafka.review_topic
    with contextlib.suppress(ConnectionError):
        await processor.process([_record(0, "near the line")])
    broker.fail_topic = None
    await processor.process([_record(0, "near the line")])  # the redelivery
    (row,) = _rows(processor.store)
    assert row.flagged is (first >= 0.5)
    sent = [v for topic, v, _ in broker.sent if topic == processor.settings.kafka.review_topic]
    # A review event exactly when the stored row is a flag, whatever the replay scored.
    assert len(sent) == reviews


class EventLog:
    """What the model and the database did, in order, with a slow write."""

    def __init__(self) -> None:
        self.events: list[str] = []


async def test_the_next_stripe_is_scored_while_the_last_is_written(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog()

    class LoggingRunner(FakeRunner):
        def score(self, texts: list[str]) -> list[Scored]:
            log.events.append(f"score {texts[0]}")
            return super().score(texts)

    broker = FakeBroker()
    processor = batch_processor(sqlite_url, runner=LoggingRunner(), publish=broker.publish)
    processor.settings.model.stripe_size = 2
    store = processor.store
    real = store.save_batch

    def slow_save(rows: list[dict[str, Any]]) -> Any:
        log.events.append(f"write start {rows[0]['message_id']}")
        time.sleep(0.3)  # long enough for the next stripe to be scored meanwhile
        saved = real(rows)
        log.events.append(f"write end {rows[0]['message_id']}")
        return saved

    monkeypatch.setattr(store, "save_batch", slow_save)
    # Lengths rise with the offsets: the batch's sort by length keeps this order.
    texts = ["sad a", "fine b", "sad c..", "fine d..", "sad e...."]
    outcome = await processor.process([_record(i, t) for i, t in enumerate(texts)])

    assert (outcome.consumed, outcome.stored, outcome.flagged, outcome.reviews_published) == (
        5,
        5,
        3,
        3,
    )
    # Stripe 2 was scored while stripe 1 was being written...
    assert log.events.index("score sad c..") < log.events.index("write end m0")
    # ...and writes happen one at a time, in the stripes' order.
    writes = [e for e in log.events if e.startswith("write")]
    assert writes == [
        "write start m0",
        "write end m0",
        "write start m2",
        "write end m2",
        "write start m4",
        "write end m4",
    ]
    # The wall time is less than the sum of the stages: they overlapped.
    t = outcome.timings_ms
    assert t["batch"] < t["model"] + t["write"] + t["publish"]
    assert len(_rows(store)) == 5


async def test_a_failed_write_waits_for_every_stripe_before_raising(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When one stripe's write fails for good, nothing of the batch is still running when
    the failure reaches the caller (which rewinds the batch); the replay stores all."""
    broker = FakeBroker()
    processor = batch_processor(sqlite_url, runner=FakeRunner(), publish=broker.publish)
    processor.settings.model.stripe_size = 2
    store = processor.store
    real = store.save_batch
    # No retries: the transient error surfaces at once.
    processor.retry.stopping.set()  # type: ignore[attr-defined]

    def second_stripe_down(rows: list[dict[str, Any]]) -> Any:
        if rows[0]["message_id"] == "m2":
            raise TransientError("database unavailable")
        return real(rows)

    monkeypatch.setattr(store, "save_batch", second_stripe_down)
    texts = ["sad a", "b....", "sad c..", "d......", "sad e....", "f........"]  # by length
    batch = [_record(i, t) for i, t in enumerate(texts)]
    with pytest.raises(TransientError):
        await processor.process(batch)
    # The first stripe's rows and events are complete; the third never started (the
    # writes are chained), so nothing was written behind the failure's back.
    assert [r.message_id for r in _rows(store)] == ["m0", "m1"]
    assert all(r.review_published_at is not None for r in _rows(store) if r.flagged)

    monkeypatch.setattr(store, "save_batch", real)
    processor.retry.stopping.clear()  # type: ignore[attr-defined]
    outcome = await processor.process(batch)  # the redelivery
    assert outcome.stored == 6
    assert sorted(r.message_id for r in _rows(store)) == [f"m{i}" for i in range(6)]
