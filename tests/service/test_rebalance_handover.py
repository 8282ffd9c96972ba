"""A member joining the group mid-batch: the batch in flight is finished and committed
before its partitions change hands, so no record is processed twice.

Both members run in this process on the real broker; the first one's batch is held
long enough for the second to join and force a rebalance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from faststream import TestApp

from depdetect.settings import Settings
from services.classifier.app import create_app
from services.classifier.batch import BatchOutcome, BatchProcessor
from tests.service.harness import one_batch_backlog, stored_ids, wait_for

pytestmark = [pytest.mark.kafka]

#: Longer than a heartbeat interval (3 s), so that the rebalance starts mid-batch.
HOLD_S = 8.0


async def test_a_member_joining_mid_batch_gets_its_partitions_committed(
    service_settings: Callable[..., Settings],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = service_settings(sqlite_url)
    sent = await one_batch_backlog(settings, "rb-", 60, wait_ms=2000)

    processed: list[tuple[int, int]] = []
    first_batch = asyncio.Event()
    real = BatchProcessor.process

    async def held(self: BatchProcessor, records: Sequence[Any]) -> BatchOutcome:
        processed.extend((r.partition, r.offset) for r in records)
        if not first_batch.is_set():
            first_batch.set()
            await asyncio.sleep(HOLD_S)
        return await real(self, records)

    monkeypatch.setattr(BatchProcessor, "process", held)
    async with TestApp(create_app(settings)):
        await asyncio.wait_for(first_batch.wait(), 60)
        async with TestApp(create_app(settings)):
            await wait_for(
                lambda: len(stored_ids(sqlite_url)) >= len(sent), timeout=90, what="all rows"
            )
            await asyncio.sleep(HOLD_S)  # time for a wrongly handed-over batch to come back

    repeated = sorted({p for p in processed if processed.count(p) > 1})
    assert not repeated, f"processed twice after the rebalance: {repeated}"
    assert len(processed) == len(sent)
    assert sorted(stored_ids(sqlite_url)) == sorted(sent)
