"""A failed batch that spans several partitions comes back on every one of them.

Delivery rests on this library behaviour: faststream's nack of a batch rewinds every
partition in it (older releases rewound only the first one and skipped records on the
others). The app runs in this process on the real broker, with the first batch made to
fail; every record of that batch must be consumed again and land exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from faststream import TestApp

from depdetect.settings import Settings
from schemas.errors import TransientError
from services.classifier.app import create_app
from services.classifier.batch import BatchOutcome, BatchProcessor
from tests.service.harness import one_batch_backlog, stored_ids, wait_for

pytestmark = [pytest.mark.kafka]


@pytest.mark.parametrize("error", [TransientError("injected"), RuntimeError("injected")])
async def test_a_failed_multi_partition_batch_is_redelivered_on_every_partition(
    error: Exception,
    service_settings: Callable[..., Settings],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = service_settings(sqlite_url)
    sent = await one_batch_backlog(settings, "r-", 90, wait_ms=3000)

    batches: list[set[tuple[int, int]]] = []
    real = BatchProcessor.process

    async def first_batch_fails(self: BatchProcessor, records: Sequence[Any]) -> BatchOutcome:
        batches.append({(r.partition, r.offset) for r in records})
        if len(batches) == 1:
            raise error
        return await real(self, records)

    monkeypatch.setattr(BatchProcessor, "process", first_batch_fails)
    async with TestApp(create_app(settings)):
        await wait_for(
            lambda: len(stored_ids(sqlite_url)) >= len(sent), timeout=90, what="all rows"
        )
        await asyncio.sleep(1)

    failed = batches[0]
    assert len({p for p, _ in failed}) >= 2, f"the failed batch spans partitions: {failed}"
    again = set().union(*batches[1:])
    assert failed <= again, f"not redelivered: {sorted(failed - again)}"
    assert sorted(stored_ids(sqlite_url)) == sorted(sent), "every record exactly once"
