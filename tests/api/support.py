"""Helpers shared by the results API tests (imported; fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from depdetect.settings import KafkaSettings
from schemas.errors import TransientError
from schemas.messages import ModeratorDecision, decode

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class RecordingSink:
    """Keeps events in memory; ``fail`` makes every send fail like an unreachable broker."""

    def __init__(self, *, fail: bool = False) -> None:
        self.events: list[ModeratorDecision] = []
        self.fail = fail

    async def send(self, event: ModeratorDecision) -> None:
        if self.fail:
            raise TransientError("broker unreachable (test)")
        self.events.append(event)

    async def close(self) -> None:
        return None


async def read_decisions(
    kafka: KafkaSettings, *, expected: int, timeout_s: float = 30.0
) -> list[tuple[bytes | None, ModeratorDecision]]:
    """Read the decision topic from the start until ``expected`` events (or the timeout)."""
    consumer = AIOKafkaConsumer(
        kafka.decision_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    events: list[tuple[bytes | None, ModeratorDecision]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(events) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                events += [(r.key, decode(ModeratorDecision, r.value)) for r in records]
        # A short extra read shows that nothing beyond the expected events arrives.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            events += [(r.key, decode(ModeratorDecision, r.value)) for r in records]
    finally:
        await consumer.stop()
    return events
