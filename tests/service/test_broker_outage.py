"""A broker outage with flagged traffic in flight: the service reconnects by itself, and
the ledger holds (nothing lost, no row twice, every flag with a review event)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from depdetect.settings import Settings
from services.kafka.admin import ensure_topics
from tests.service.harness import ServiceProcess, wait_for
from tests.support.ledger import Ledger, texts

pytestmark = pytest.mark.kafka


async def test_broker_outage_with_flagged_traffic_in_flight(
    private_kafka: Callable[..., str],
    service_settings: Callable[..., Settings],
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    base = service_settings(sqlite_url)
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"bootstrap_servers": private_kafka("bootstrap"), "batch_max_records": 8}
            )
        }
    )
    await ensure_topics(settings.kafka)
    ledger = Ledger(settings)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        # About half of these are flagged: review events are in flight when the broker dies.
        await ledger.publish(texts("before", 300))
        await ledger.wait_for_rows(20, timeout=60)

        private_kafka("kill")  # SIGKILL: no goodbye to the clients
        await wait_for(lambda: service.health()[0] == 503, timeout=60, what="readiness to drop")
        await asyncio.sleep(3)
        private_kafka("start")
        private_kafka("wait", "120")

        await ledger.publish(texts("after", 100))
        report = await ledger.assert_holds(timeout=180, max_duplicate_reviews=64)
        print("broker outage:", report.summary())
        assert report.rows == 400 and report.flagged > 0
        assert service.proc is not None and service.proc.poll() is None, "it never exited"
        await wait_for(lambda: service.health()[0] == 200, timeout=60, what="ready again")
    finally:
        assert service.terminate() == 0, service.log()
