"""A broker outage: the service reconnects by itself and loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from depdetect.settings import Settings, StoreUnflagged
from schemas.messages import SubmittedText
from schemas.tables import ResultRow
from services.kafka.admin import ensure_topics
from services.publisher.client import TextPublisher
from tests.service.harness import ServiceProcess, wait_for

pytestmark = pytest.mark.kafka


def _ids(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(ResultRow.message_id)).scalars())
    finally:
        engine.dispose()


async def _publish(settings: Settings, prefix: str, n: int) -> list[str]:
    messages = [
        SubmittedText(message_id=f"{prefix}-{i}", text=f"texto número {i}") for i in range(n)
    ]
    async with TextPublisher(settings.kafka) as pub:
        async for _ in pub.publish_many(messages):
            pass
    return [m.message_id for m in messages]


async def test_service_reconnects_after_the_broker_comes_back(
    private_kafka: Callable[..., str],
    make_settings: Callable[..., Settings],
    tiny_bundle: Path,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    base = make_settings(
        database={"url": sqlite_url},
        model={"bundle_path": tiny_bundle},
        storage={"store_unflagged": StoreUnflagged.SCORE},
    )
    settings = base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"bootstrap_servers": private_kafka("bootstrap")})
        }
    )
    await ensure_topics(settings.kafka)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        before = await _publish(settings, "before", 100)
        await wait_for(lambda: len(_ids(sqlite_url)) >= 100, timeout=60, what="first results")

        private_kafka("kill")  # SIGKILL: no goodbye to the clients
        await wait_for(lambda: service.health()[0] == 503, timeout=60, what="readiness to drop")
        await asyncio.sleep(3)
        private_kafka("start")
        private_kafka("wait", "120")

        after = await _publish(settings, "after", 100)
        await wait_for(lambda: len(_ids(sqlite_url)) >= 200, timeout=180, what="recovery")
        assert service.proc is not None and service.proc.poll() is None, "it never exited"
        assert service.health()[0] == 200
    finally:
        assert service.terminate() == 0, service.log()
    assert sorted(_ids(sqlite_url)) == sorted(before + after)
