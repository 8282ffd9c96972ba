"""The classifier service end to end: real broker, real database, real model bundle."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from depdetect.settings import Settings
from schemas.messages import DeadLetter, ReviewRequest, SubmittedText, decode
from schemas.migrate import upgrade
from schemas.tables import ResultRow
from services.kafka.admin import ensure_topics
from tests.service.harness import (
    ServiceProcess,
    malformed_payloads,
    read_topic,
    stored_ids,
    wait_for,
)
from tests.service.texts import stream
from tests.support.ledger import Ledger, texts

pytestmark = [pytest.mark.kafka]


def _counts(url: str) -> tuple[int, int, int]:
    """(rows, distinct message ids, flagged rows)."""
    ids = stored_ids(url)
    return len(ids), len(set(ids)), len(stored_ids(url, ResultRow.flagged))


def _flagged_ids(url: str) -> set[str]:
    return set(stored_ids(url, ResultRow.flagged))


async def _publish_stream(
    settings: Settings, n: int, *, malformed_every: int | None = None, prefix: str = "m"
) -> tuple[list[str], list[tuple[bytes, str]]]:
    """Publish n records; every ``malformed_every``-th is bad. Returns valid ids and bad ones."""
    from aiokafka import AIOKafkaProducer

    bad_kinds = list(malformed_payloads(settings.contract.max_text_chars))
    valid: list[str] = []
    bad: list[tuple[bytes, str]] = []
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i, (lang, text) in enumerate(stream(n)):
            if malformed_every and i % malformed_every == malformed_every - 1:
                payload, reason = bad_kinds[len(bad) % len(bad_kinds)]
                bad.append((payload, reason))
                await producer.send(
                    settings.kafka.input_topics[0], payload, key=f"bad-{i}".encode()
                )
                continue
            msg = SubmittedText(
                message_id=f"{prefix}-{i}",
                text=text,
                source="test",
                author_ref=f"author-{i % 17}",
                language=lang if i % 2 else None,
            )
            valid.append(msg.message_id)
            await producer.send(
                settings.kafka.input_topics[0],
                msg.model_dump_json().encode(),
                key=msg.author_ref.encode(),
            )  # type: ignore[union-attr]
        await producer.flush()
    finally:
        await producer.stop()
    return valid, bad


@pytest.fixture
def stream_settings(service_settings: Callable[..., Settings]) -> Callable[[str], Settings]:
    def factory(url: str) -> Settings:
        return service_settings(url, contract={"max_text_chars": 300})

    return factory


async def _assert_reviews_cover_flags(settings: Settings, url: str) -> list[ReviewRequest]:
    flagged = _flagged_ids(url)
    records = await read_topic(
        settings.kafka.bootstrap_servers,
        settings.kafka.review_topic,
        expect=len(flagged),
        timeout=60,
    )
    reviews = [decode(ReviewRequest, value) for _, value, _ in records]
    assert {r.message_id for r in reviews} >= flagged, "every flag has a review event"
    assert {r.message_id for r in reviews} <= flagged, "no review event without a flag"
    return reviews


@pytest.mark.parametrize("db", ["sqlite", "fresh_postgres"])
async def test_a_thousand_messages_with_five_percent_malformed(
    db: str,
    request: pytest.FixtureRequest,
    stream_settings: Callable[[str], Settings],
    tmp_path: Path,
) -> None:
    url = request.getfixturevalue(f"{db}_url")
    settings = stream_settings(url)
    await ensure_topics(settings.kafka)
    valid, bad = await _publish_stream(settings, 1000, malformed_every=20)
    assert len(bad) == 50 and len(valid) == 950

    service = ServiceProcess(settings, tmp_path / "service.log").start()
    try:
        await wait_for(lambda: _counts(url)[0] >= len(valid), timeout=180, what="all results")
        dead = await read_topic(
            settings.kafka.bootstrap_servers,
            settings.kafka.dead_letter_topic,
            expect=len(bad),
            timeout=60,
        )
        assert service.health()[0] == 200
    finally:
        assert service.terminate() == 0, service.log()

    rows, distinct, flagged = _counts(url)
    assert rows == distinct == len(valid), "exactly one result per valid message"
    assert 0 < flagged < rows
    reviews = await _assert_reviews_cover_flags(settings, url)
    assert len(reviews) == flagged
    assert all(
        r.text and r.result_url and r.result_url.endswith(f"/results/{r.result_id}")
        for r in reviews
    )

    assert len(dead) == len(bad)
    letters = [decode(DeadLetter, value) for _, value, _ in dead]
    expected = Counter(reason for _, reason in bad)
    for fragment, count in expected.items():
        assert sum(fragment in d.reason for d in letters) == count, fragment
    for letter, (key, _, headers) in zip(letters, dead, strict=True):
        assert letter.source_topic == settings.kafka.input_topics[0]
        assert letter.source_offset >= 0
        original = base64.b64decode(letter.payload_b64)
        assert original in {p for p, _ in bad}, "the original bytes are kept"
        assert key is not None and key.startswith(b"bad-")
        assert headers["depdetect-reason"].decode() == letter.reason[:500]
    log = service.log()
    assert "I feel empty" not in log and "Ich fühle" not in log, "logs never contain texts"


async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    stream_settings: Callable[[str], Settings],
    fresh_postgres_url: str,
    tmp_path: Path,
) -> None:
    url = fresh_postgres_url
    settings = stream_settings(url)
    settings.kafka.batch_max_records = 16
    await ensure_topics(settings.kafka)
    ledger = Ledger(settings)
    await ledger.publish(texts("m", 1500))

    first = ServiceProcess(settings, tmp_path / "first.log").start()
    await ledger.wait_for_rows(200, timeout=120)
    first.kill()
    assert ledger.row_count() < 1500, "the kill happened mid-stream"

    second = ServiceProcess(settings, tmp_path / "second.log").start()
    try:
        # A kill mid-batch may repeat that batch's review events (acked, not yet marked).
        report = await ledger.assert_holds(timeout=240, max_duplicate_reviews=16)
    finally:
        assert second.terminate() == 0, second.log()
    assert report.rows == 1500 and report.flagged > 0


async def test_two_members_share_partitions_and_one_takes_over(
    stream_settings: Callable[[str], Settings],
    fresh_postgres_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    url = fresh_postgres_url
    settings = stream_settings(url)
    settings.kafka.batch_max_records = 8
    await ensure_topics(settings.kafka, partitions=4)
    ledger = Ledger(settings)
    a = ServiceProcess(settings, tmp_path / "a.log").start()
    b = ServiceProcess(settings, tmp_path / "b.log").start()
    try:
        # Keep the stream flowing until the group has rebalanced over both members.
        for round_ in range(20):
            await ledger.publish(texts(f"g{unique}r{round_}", 60))
            if (
                a.metric("depdetect_consumed_total") > 0
                and b.metric("depdetect_consumed_total") > 0
            ):
                break
            await asyncio.sleep(1)
        assert a.metric("depdetect_consumed_total") > 0, a.log()
        assert b.metric("depdetect_consumed_total") > 0, b.log()

        a.kill()  # possibly mid-batch: its uncommitted records go to the survivor
        await ledger.publish(texts(f"g{unique}after", 300))
        await ledger.assert_holds(timeout=240, max_duplicate_reviews=16)
        assert b.metric("depdetect_consumed_total") > 0
    finally:
        assert b.terminate() == 0, b.log()


async def test_database_outage_pauses_and_recovers(
    stream_settings: Callable[[str], Settings],
    private_postgres: Callable[[str], None],
    private_postgres_url: str,
    tmp_path: Path,
) -> None:
    settings = stream_settings(private_postgres_url)
    await ensure_topics(settings.kafka)
    upgrade(private_postgres_url)
    ledger = Ledger(settings)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        await ledger.publish(texts("before", 200))
        await ledger.wait_for_rows(200, timeout=120)
        private_postgres("stop")
        await ledger.publish(texts("during", 300))
        await wait_for(lambda: service.health()[0] == 503, timeout=30, what="readiness to drop")
        await wait_for(
            lambda: service.metric("depdetect_transient_errors_total") > 0,
            timeout=60,
            what="the service to notice the outage",
        )
        private_postgres("start")
        # Recovery without a restart: the writes and outbox marks were retried in place.
        report = await ledger.assert_holds(timeout=240, max_duplicate_reviews=64)
        assert report.rows == 500
        assert service.proc is not None and service.proc.poll() is None, "it never crashed"
    finally:
        assert service.terminate() == 0, service.log()


async def test_sigterm_exits_cleanly_with_json_logs(
    stream_settings: Callable[[str], Settings], sqlite_url: str, tmp_path: Path
) -> None:
    settings = stream_settings(sqlite_url)
    settings.log_format = "json"
    await ensure_topics(settings.kafka)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    assert service.terminate() == 0
    lines = [line for line in service.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("model" in r["event"] and "loaded" in r["event"] for r in records)
    assert all({"event", "level", "logger", "timestamp"} <= set(r) for r in records)
    assert "Traceback" not in service.log()


def test_a_broken_bundle_is_refused_at_start(
    stream_settings: Callable[[str], Settings], sqlite_url: str, tmp_path: Path, tiny_bundle: Path
) -> None:
    import shutil

    broken = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, broken)
    (broken / "model.onnx").unlink()
    settings = stream_settings(sqlite_url)
    settings.model.bundle_path = broken
    with pytest.raises(AssertionError, match=r"missing model\.onnx"):
        ServiceProcess(settings, tmp_path / "svc.log").start(ready_timeout=30)
