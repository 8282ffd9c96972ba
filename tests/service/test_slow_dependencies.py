"""Slow and hanging dependencies, on the real broker and a real PostgreSQL.

- A live rebalance: a second member joins while the first one's batches are stuck on the
  database (a lock held by another session); the ledger holds.
- A database that hangs (a lock that blocks every write, held far longer than the
  consumer's poll interval): statement timeouts make the writes fail, so retries fire,
  and the member keeps its place in the group: it is not silently evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from depdetect.settings import Settings
from schemas.migrate import upgrade
from schemas.tables import ResultRow
from services.kafka.admin import ensure_topics
from tests.service.harness import ServiceProcess, wait_for
from tests.support.ledger import Ledger, texts

pytestmark = pytest.mark.kafka

ASSIGNED = "assigned to partitions"


def assignments(service: ServiceProcess) -> int:
    """How often the member got partitions (its whole log, not the tail)."""
    return service.log_path.read_text(errors="replace").count(ASSIGNED)


@contextlib.contextmanager
def writes_blocked(url: str) -> Iterator[None]:
    """Another session holds a lock that every INSERT/UPDATE of the results waits for
    (reads go on), until the block ends."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text(f"LOCK TABLE {ResultRow.__tablename__} IN EXCLUSIVE MODE"))
            yield
            conn.rollback()
    finally:
        engine.dispose()


@pytest.fixture
def slow_settings(
    service_settings: Callable[..., Settings],
    fresh_postgres_url: str,
) -> Settings:
    settings = service_settings(database={"url": fresh_postgres_url, "statement_timeout_s": 2.0})
    settings.kafka.batch_max_records = 8
    upgrade(fresh_postgres_url)
    return settings


async def test_a_member_joins_while_batches_are_stuck(
    slow_settings: Settings, tmp_path: Path
) -> None:
    settings = slow_settings
    await ensure_topics(settings.kafka, partitions=4)
    ledger = Ledger(settings)
    a = ServiceProcess(settings, tmp_path / "a.log").start()
    b: ServiceProcess | None = None
    try:
        await ledger.publish(texts("early", 300))
        await ledger.wait_for_rows(16, timeout=120)
        with writes_blocked(settings.database.url):
            # A is inside a batch that cannot write; B joins and the group rebalances.
            b = ServiceProcess(settings, tmp_path / "b.log").start()
            await wait_for(lambda: assignments(a) >= 2, timeout=120, what="a rebalance of A")
            await asyncio.sleep(2)
        await ledger.publish(texts("late", 200))
        report = await ledger.assert_holds(timeout=240, max_duplicate_reviews=64)
        print("rebalance:", report.summary())
        assert report.rows == 500
        assert b.metric("depdetect_consumed_total") > 0, "the newcomer got partitions"
    finally:
        if b is not None:
            assert b.terminate() == 0, b.log()
        assert a.terminate() == 0, a.log()


async def test_a_hung_database_times_out_and_the_member_stays(
    slow_settings: Settings, tmp_path: Path
) -> None:
    settings = slow_settings
    settings.kafka.max_poll_interval_ms = 10_000
    await ensure_topics(settings.kafka)
    ledger = Ledger(settings)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        await ledger.publish(texts("first", 100))
        await ledger.wait_for_rows(100, timeout=120)
        joined = assignments(service)
        with writes_blocked(settings.database.url):
            await ledger.publish(texts("stuck", 100))
            # Writes hang for 3 poll intervals; statement timeouts turn that into retries.
            await wait_for(
                lambda: service.metric("depdetect_retries_total") >= 3,
                timeout=60,
                what="retries while the database hangs",
            )
            await asyncio.sleep(30)
            assert service.proc is not None and service.proc.poll() is None
        report = await ledger.assert_holds(timeout=180)
        print("hung database:", report.summary())
        assert assignments(service) == joined, "the member was evicted"
    finally:
        assert service.terminate() == 0, service.log()
