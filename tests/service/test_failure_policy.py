"""The failure policy inside one batch, with a fake model and a fake broker, on SQLite and
on the real PostgreSQL: poison is isolated and dead-lettered, the rest goes through;
dead letters always fit the broker; nothing is retried forever; texts stay out of logs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.errors import BundleError, ContractError, TransientError
from schemas.messages import DeadLetter, decode
from schemas.migrate import upgrade
from schemas.tables import ResultRow
from services.classifier.batch import BatchProcessor
from services.classifier.failure_policy import (
    Attempts,
    FatalError,
    Fault,
    classify,
    describe,
)
from services.classifier.health import Progress
from services.classifier.metrics import ServiceMetrics
from services.classifier.retry import Retrier
from services.inference.runner import Scored
from services.storage.engine import make_engine
from services.storage.results import ResultStore
from tests.service.fakes import Record, batch_processor, refuse_source

SECRET = "my very private sentence"


class PickyRunner:
    """Scores like a model, but raises (quoting the text, as tokenizers do) on 'POISON'."""

    model_version = "m-fake"
    threshold = 0.5

    def __init__(self) -> None:
        self.broken = False
        self.calls = 0

    def score(self, texts: list[str]) -> list[Scored]:
        self.calls += 1
        if self.broken or any("POISON" in t for t in texts):
            raise TypeError(f"cannot encode input {texts!r}")
        return [Scored(0.9 if "sad" in t else 0.1, len(t.split())) for t in texts]


class FakeBroker:
    def __init__(self, max_bytes: int = 1_048_576) -> None:
        self.sent: list[tuple[str, bytes, bytes | None, dict[str, str]]] = []
        self.max_bytes = max_bytes

    async def publish(
        self, topic: str, value: bytes, key: bytes | None, headers: dict[str, str]
    ) -> None:
        if len(value) + len(key or b"") > self.max_bytes:
            raise MessageSizeTooLargeError()
        self.sent.append((topic, value, key, headers))

    def on(self, topic: str) -> list[tuple[bytes, bytes | None, dict[str, str]]]:
        return [(v, k, h) for t, v, k, h in self.sent if t == topic]


def _record(offset: int, text: str, partition: int = 0, **extra: Any) -> Record:
    body = {"message_id": f"m{offset}", "text": text, **extra}
    return Record(json.dumps(body).encode(), offset, partition=partition)


@pytest.fixture
def parts(database_url: str) -> tuple[BatchProcessor, FakeBroker, PickyRunner]:
    broker = FakeBroker()
    runner = PickyRunner()
    processor = batch_processor(
        database_url, runner=runner, publish=broker.publish, attempt_timeout_s=10
    )
    return processor, broker, runner


def _stored(processor: BatchProcessor) -> list[str]:
    with Session(processor.store.engine) as s:
        return sorted(s.scalars(select(ResultRow.message_id)))


def _letters(processor: BatchProcessor, broker: FakeBroker) -> list[DeadLetter]:
    return [
        decode(DeadLetter, v) for v, _, _ in broker.on(processor.settings.kafka.dead_letter_topic)
    ]


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        (ContractError("text: empty"), Fault.POISON),
        (TransientError("down"), Fault.TRANSIENT),
        (BundleError("no model"), Fault.FATAL),
        (FatalError("schema"), Fault.FATAL),
        (sa_exc.OperationalError("SELECT 1", {}, Exception("gone")), Fault.TRANSIENT),
        (sa_exc.TimeoutError("pool exhausted"), Fault.TRANSIENT),
        (sa_exc.DataError("INSERT", {}, Exception("NUL")), Fault.POISON),
        (sa_exc.IntegrityError("INSERT", {}, Exception("check")), Fault.POISON),
        (sa_exc.ProgrammingError("INSERT", {}, Exception("no table")), Fault.FATAL),
        (sa_exc.OperationalError("INSERT", {}, Exception("no such table: x")), Fault.FATAL),
        (KafkaConnectionError(), Fault.TRANSIENT),
        (MessageSizeTooLargeError(), Fault.POISON),
        (TypeError("tokenizer"), Fault.SUSPECT),
        (UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates"), Fault.SUSPECT),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_one_policy_classifies_every_error(exc: BaseException, fault: Fault) -> None:
    assert classify(exc) is fault


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_records_the_model_rejects_are_isolated_and_the_rest_goes_through(  # type: ignore[no-untyped-def]
    parts, caplog: pytest.LogCaptureFixture
) -> None:
    processor, broker, runner = parts
    batch = [_record(i, "so sad" if i % 3 else "fine day") for i in range(16)]
    batch[5] = _record(5, f"POISON {SECRET}")
    batch[11] = _record(11, "POISON again", partition=2)
    with caplog.at_level(logging.DEBUG):
        outcome = await processor.process(batch)
    assert SECRET not in caplog.text, "the tokenizer's message quotes the text: not logged"
    assert _stored(processor) == sorted(f"m{i}" for i in range(16) if i not in (5, 11))
    letters = _letters(processor, broker)
    assert sorted(d.source_offset for d in letters) == [5, 11]
    assert all(d.reason == "the model could not score this text: TypeError" for d in letters)
    assert all(d.error_type == "TypeError" for d in letters)
    assert {d.source_partition for d in letters} == {0, 2}
    assert outcome.dead_lettered == 2 and outcome.stored == 14
    assert runner.calls <= 1 + 2 * 2 * 4, "bisection, not one call per record"


async def test_rows_the_database_refuses_are_isolated_and_dead_lettered(  # type: ignore[no-untyped-def]
    parts, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    processor, broker, _ = parts
    refuse_source(database_url, "refused")
    batch = [_record(i, f"so sad {SECRET} {i}") for i in range(9)]
    batch[3] = _record(3, f"so sad {SECRET}", source="refused")
    batch[7] = _record(7, "fine", source="refused")
    with caplog.at_level(logging.DEBUG):
        outcome = await processor.process(batch)
    assert _stored(processor) == sorted(f"m{i}" for i in range(9) if i not in (3, 7))
    letters = _letters(processor, broker)
    assert sorted(d.source_offset for d in letters) == [3, 7]
    assert all(d.reason.startswith("the database refused the result row: ") for d in letters)
    assert all(d.error_type.startswith("IntegrityError/") for d in letters)
    # Every flagged row that was stored has its review event; the refused one has none.
    reviews = broker.on(processor.settings.kafka.review_topic)
    assert outcome.reviews_published == len(reviews) == 7
    # PostgreSQL's error detail quotes the whole failing row, text included.
    assert SECRET not in caplog.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_model_that_fails_on_everything_is_fatal(parts) -> None:  # type: ignore[no-untyped-def]
    processor, broker, runner = parts
    runner.broken = True
    with pytest.raises(FatalError, match="known-good text"):
        await processor.process([_record(0, "sad"), _record(1, "fine")])
    assert _letters(processor, broker) == [], "nothing dead-lettered for the model's fault"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_oversized_dead_letters_are_truncated_never_lost(parts) -> None:  # type: ignore[no-untyped-def]
    processor, broker, _ = parts
    processor.settings.kafka.max_request_bytes = 30_000
    broker.max_bytes = 30_000
    huge = b"{not json " + b"x" * 100_000
    big_key = b"k" * 40_000
    await processor.process(
        [Record(huge, 0, key=b"small"), Record(huge, 1, key=big_key), Record(b"{", 2)]
    )
    sent = broker.on(processor.settings.kafka.dead_letter_topic)
    assert len(sent) == 3
    by_offset = {decode(DeadLetter, v).source_offset: (v, k, h) for v, k, h in sent}
    for offset in (0, 1):
        value, _, headers = by_offset[offset]
        letter = decode(DeadLetter, value)
        assert len(value) <= 30_000
        assert letter.truncated and letter.original_payload_bytes == len(huge)
        assert headers["depdetect-truncated"] == "true"
        assert headers["depdetect-original-size"] == str(len(huge))
        assert huge.startswith(base64.b64decode(letter.payload_b64))
        assert "not valid JSON" in letter.reason
    assert by_offset[0][1] == b"small"
    small = decode(DeadLetter, by_offset[2][0])
    assert not small.truncated and base64.b64decode(small.payload_b64) == b"{"

    # The broker's real limit is lower than the setting says: the fallback still fits.
    broker.max_bytes = 9_000
    await processor.process([Record(huge, 3)])
    value, _, headers = broker.on(processor.settings.kafka.dead_letter_topic)[-1]
    assert decode(DeadLetter, value).source_offset == 3 and headers["depdetect-truncated"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_batch_failing_as_a_whole_ends_one_by_one_with_only_the_guilty_dead_lettered(  # type: ignore[no-untyped-def]
    parts, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor, broker, _ = parts
    real = processor.review_event

    def review_event(row: Any) -> Any:  # a bug only one record triggers, outside isolation
        if row.message_id == "m2":
            raise RuntimeError(f"unexpected {SECRET}")
        return real(row)

    monkeypatch.setattr(processor, "review_event", review_event)
    batch = [_record(i, "so sad") for i in range(4)]
    attempts = Attempts(limit=3)
    for _ in range(3):
        assert not attempts.exhausted(batch)
        with pytest.raises(RuntimeError):
            await processor.process(batch)
        attempts.failed(batch)
    assert attempts.exhausted(batch) and attempts.seen_before(batch) == 4
    outcome = await processor.process_one_by_one(batch)
    letters = _letters(processor, broker)
    assert [d.source_offset for d in letters] == [2]
    assert letters[0].reason.startswith("failed 5 times in its batch and again alone")
    assert letters[0].error_type == "RuntimeError" and SECRET not in letters[0].reason
    assert outcome.dead_lettered == 1 and outcome.reviews_published == 3
    attempts.succeeded(batch)
    assert attempts.seen_before(batch) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_transient_errors_are_retried_not_dead_lettered(  # type: ignore[no-untyped-def]
    parts, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    processor, broker, _ = parts
    real = processor.store.save_batch
    calls = {"n": 0}

    def flaky(rows: list[dict[str, Any]]) -> Any:
        calls["n"] += 1
        if calls["n"] < 3:
            raise sa_exc.OperationalError("INSERT …", {"text": SECRET}, Exception(SECRET))
        return real(rows)

    # The boundary translates the driver error; here the raw error is raised past it.
    monkeypatch.setattr(
        processor.store,
        "save_batch",
        lambda rows: _translate(flaky, rows),
    )
    with caplog.at_level(logging.DEBUG):
        await processor.process([_record(0, f"sad {SECRET}")])
    assert calls["n"] == 3 and _stored(processor) == ["m0"]
    assert _letters(processor, broker) == []
    assert "database unavailable (attempt 2)" in caplog.text
    assert SECRET not in caplog.text, "SQL parameters and driver messages stay out of logs"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_hanging_database_call_times_out_and_is_retried(parts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    processor, _, _ = parts
    processor.retry.attempt_timeout_s = 0.5
    real = processor.store.save_batch
    calls = {"n": 0}

    def hangs_once(rows: list[dict[str, Any]]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(3)  # a database that accepted the call and does not answer
        return real(rows)

    monkeypatch.setattr(processor.store, "save_batch", hangs_once)
    started = time.monotonic()
    await processor.process([_record(0, "sad")])
    assert calls["n"] == 2 and time.monotonic() - started < 3
    assert processor.metrics.retries.labels("database")._value.get() == 1  # type: ignore[attr-defined]


def test_logged_exceptions_keep_their_traceback_but_not_foreign_messages() -> None:
    import io

    from depdetect.logs import ScrubExceptions

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ScrubExceptions())
    logger = logging.getLogger("depdetect.test-scrub")
    logger.addHandler(handler)
    try:
        try:
            try:
                raise ValueError(f"tokenizer cannot encode {SECRET!r}")
            except ValueError as exc:
                raise ContractError("text: refused") from exc
        except ContractError:
            logger.exception("batch %d failed", 7)
    finally:
        logger.removeHandler(handler)
    logged = out.getvalue()
    assert "batch 7 failed" in logged and "Traceback" in logged
    assert "builtins.ValueError: <message hidden>" in logged
    assert "text: refused" in logged, "the project's own messages are kept"
    assert SECRET not in logged


def _translate(fn: Any, rows: Any) -> Any:
    from services.classifier.failure_policy import database_errors

    with database_errors():
        return fn(rows)


def test_descriptions_never_carry_driver_messages() -> None:
    exc = sa_exc.DataError("INSERT", {"text": SECRET}, ValueError(f"bad value {SECRET}"))
    assert SECRET not in describe(exc)
    assert describe(exc).startswith("DataError (builtins.ValueError")
    assert describe(ContractError("text: empty")) == "text: empty"
    assert describe(TypeError(SECRET)) == "TypeError"


def test_stall_is_waiting_without_progress_for_longer_than_the_limit() -> None:
    now = [0.0]
    progress = Progress(stall_after_s=10, clock=lambda: now[0])
    now[0] = 100
    assert not progress.stalled(), "idle is not stalled"
    progress.batch_started()
    now[0] = 105
    assert not progress.stalled()
    progress.batch_committed(lag=50)  # progress, more waiting
    now[0] = 114
    assert not progress.stalled()
    progress.batch_started()  # fails, comes back, fails …
    now[0] = 116
    assert progress.stalled()
    progress.batch_committed(lag=0)
    now[0] = 500
    assert not progress.stalled(), "caught up: idle again"
    progress.lag_seen(3)
    now[0] = 511
    assert progress.stalled(), "lag that nothing consumes is a stall"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_outbox_sweep_leaves_young_rows_and_reports_the_oldest_age(parts) -> None:  # type: ignore[no-untyped-def]
    processor, broker, _ = parts
    review_topic = processor.settings.kafka.review_topic
    real = processor.publish

    async def failing(topic: str, *args: Any) -> None:
        if topic == review_topic:
            raise KafkaConnectionError()
        await real(topic, *args)

    processor.publish = failing  # type: ignore[method-assign]
    with pytest.raises(KafkaConnectionError):
        await processor.process([_record(0, "sad"), _record(1, "sad too")])
    processor.publish = real  # type: ignore[method-assign]
    assert await processor.sweep_outbox(older_than_s=3600) == 0
    assert processor.metrics.outbox_oldest_seconds._value.get() >= 0  # type: ignore[attr-defined]
    assert await processor.sweep_outbox() == 2
    assert processor.metrics.outbox_oldest_seconds._value.get() == 0  # type: ignore[attr-defined]
    assert len(broker.on(review_topic)) == 2


async def test_retries_end_after_their_budget_so_the_batch_is_rewound_in_time() -> None:
    import time

    metrics = ServiceMetrics()
    retrier = Retrier(asyncio.Event(), metrics, max_wait=0.1, retry_for_s=0.5)

    def down() -> None:
        raise TransientError("database unavailable")

    started = time.monotonic()
    with pytest.raises(TransientError):
        await retrier(down)
    assert 0.5 <= time.monotonic() - started < 3
    assert metrics.retries.labels("database")._value.get() >= 2  # type: ignore[attr-defined]


def test_transient_failures_are_redeliveries_but_never_use_up_attempts() -> None:
    batch = [Record(b"{}", offset) for offset in range(3)]
    attempts = Attempts(limit=2)
    for _ in range(10):
        attempts.failed(batch, counts=False)  # a long database outage
    assert attempts.seen_before(batch) == 3 and not attempts.exhausted(batch)
    attempts.failed(batch)
    attempts.failed(batch)
    assert attempts.exhausted(batch)


def test_a_database_that_may_lose_commits_is_reported(database_url: str) -> None:
    upgrade(database_url)
    store = ResultStore(make_engine(database_url))
    try:
        problem = store.durability_problem()
        if store.engine.dialect.name == "sqlite":
            assert problem is None, "the engine recipe sets synchronous=FULL"
            return
        # The test cluster of deploy/postgres/postgres.sh trades durability for speed
        # (fsync off) unless DEPDETECT_PG_DURABLE is set: the check must see exactly that.
        with store.engine.connect() as conn:
            off = [
                f"{name}=off"
                for name in ("fsync", "synchronous_commit")
                if conn.exec_driver_sql(f"SHOW {name}").scalar() == "off"
            ]
        assert problem == (", ".join(off) or None)
    finally:
        store.engine.dispose()
