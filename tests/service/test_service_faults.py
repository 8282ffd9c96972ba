"""The failure policy seen from outside the real service: a fatal error stops it with a clear
message and exit status 70; a stall turns /health not-ready and is counted in /metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import create_engine

from depdetect.settings import Settings
from schemas.messages import SubmittedText
from schemas.migrate import upgrade
from schemas.tables import ResultRow
from services.classifier.failure_policy import FATAL_EXIT_CODE
from services.kafka.admin import ensure_topics
from tests.service.harness import ServiceProcess, stored_ids, wait_for

pytestmark = [pytest.mark.kafka]

SECRET = "quokka-private-words"


async def _publish(settings: Settings, n: int, prefix: str) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    ids = []
    try:
        for i in range(n):
            msg = SubmittedText(message_id=f"{prefix}-{i}", text=f"so sad {SECRET} {i}")
            await producer.send_and_wait(
                settings.kafka.input_topics[0], msg.model_dump_json().encode(), partition=i % 3
            )
            ids.append(msg.message_id)
    finally:
        await producer.stop()
    return ids


def _count(url: str) -> int:
    return len(stored_ids(url))


def _progress(service: ServiceProcess) -> object:
    checks = service.health()[1].get("checks")
    return checks.get("progress") if isinstance(checks, dict) else None


@pytest.mark.parametrize("db", ["sqlite", "fresh_postgres"])
async def test_a_database_without_the_schema_stops_the_service_with_a_clear_error(
    db: str,
    request: pytest.FixtureRequest,
    make_settings: Callable[..., Settings],
    tiny_bundle: Path,
    tmp_path: Path,
) -> None:
    url = request.getfixturevalue(f"{db}_url")
    settings = make_settings(
        database={"url": url, "auto_migrate": False},
        model={"bundle_path": tiny_bundle, "threshold": 0.0},
    )
    await ensure_topics(settings.kafka)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    # Published once it is ready: a backlog would reach the fatal write before the
    # harness sees it ready (the first batch takes a few tens of ms).
    await _publish(settings, 6, "fatal")
    assert service.wait_exit(90) == FATAL_EXIT_CODE
    log = service.log()
    assert "is the schema migrated" in log and "stopped by a fatal error" in log
    assert "dead-lettered" not in log, "the environment's fault is not the records'"
    assert SECRET not in log


async def test_a_stall_makes_health_not_ready_until_progress_resumes(
    service_settings: Callable[..., Settings],
    private_postgres: Callable[[str], None],
    private_postgres_url: str,
    tmp_path: Path,
) -> None:
    settings = service_settings(
        database={"url": private_postgres_url, "statement_timeout_s": 3},
        service={"stall_after_s": 4, "outbox_sweep_interval_s": 2, "retry_for_s": 2},
    )
    settings.kafka.batch_max_records = 8
    await ensure_topics(settings.kafka)
    upgrade(private_postgres_url)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        first = await _publish(settings, 30, "before")
        await wait_for(lambda: _count(private_postgres_url) >= len(first), timeout=60, what="rows")
        assert _progress(service) is True
        private_postgres("stop")
        second = await _publish(settings, 30, "during")
        await wait_for(
            lambda: _progress(service) is False,
            timeout=60,
            what="the stall to show in /health",
        )
        assert service.health()[0] == 503
        assert service.metric("depdetect_stalled") == 1
        assert service.metric("depdetect_retries_total") > 0
        # Retries end after retry_for_s: the batch is rewound and comes back, again and again.
        await wait_for(
            lambda: service.metric("depdetect_redeliveries_total") >= 8,
            timeout=60,
            what="redeliveries",
        )
        assert service.metric("depdetect_failed_batches_total") >= 1
        assert service.metric("depdetect_consumer_lag") >= 8, "lag seen while batches fail"
        private_postgres("start")
        await wait_for(
            lambda: _count(private_postgres_url) >= len(first) + len(second),
            timeout=120,
            what="recovery",
        )
        await wait_for(lambda: service.health()[0] == 200, timeout=30, what="ready again")
        assert service.metric("depdetect_stalled") == 0
        await wait_for(
            lambda: service.metric("depdetect_outbox_oldest_unpublished_seconds") == 0,
            timeout=30,
            what="the outbox gauge",
        )
    finally:
        assert service.terminate() == 0, service.log()
    assert SECRET not in service.log(), "texts never reach the log, even in database errors"


async def test_the_outbox_is_swept_periodically_while_the_service_runs(
    make_settings: Callable[..., Settings],
    tiny_bundle: Path,
    tiny_threshold: float,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from schemas.messages import ReviewRequest, decode
    from tests.service.harness import read_topic

    settings = make_settings(
        database={"url": sqlite_url},
        model={"bundle_path": tiny_bundle, "threshold": tiny_threshold},
        service={"outbox_sweep_interval_s": 2},
    )
    await ensure_topics(settings.kafka)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        # A flag whose review event never went out (as if a crash hit between the write and
        # the publish), appearing after start-up: only a periodic sweep can find it.
        old = datetime.now(UTC) - timedelta(minutes=5)
        engine = create_engine(sqlite_url)
        with Session(engine) as session, session.begin():
            session.add(
                ResultRow(
                    message_id="left-behind",
                    score=0.99,
                    label="indicators",
                    flagged=True,
                    threshold=0.5,
                    model_version="m",
                    language="en",
                    source="test",
                    text="a flagged text",
                    submitted_at=old,
                    classified_at=old,
                    review_status="pending",
                )
            )
        engine.dispose()
        reviews = await read_topic(
            settings.kafka.bootstrap_servers, settings.kafka.review_topic, expect=1, timeout=30
        )
        assert [decode(ReviewRequest, v).message_id for _, v, _ in reviews] == ["left-behind"]
        await wait_for(
            lambda: service.metric("depdetect_review_events_total") == 1, timeout=10, what="count"
        )
    finally:
        assert service.terminate() == 0, service.log()
