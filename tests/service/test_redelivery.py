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
from aiokafka import AIOKafkaProducer
from faststream import TestApp

from depdetect.settings import Settings
from schemas.errors import TransientError
from schemas.messages import SubmittedText
from services.classifier.app import create_app
from services.classifier.batch import BatchOutcome, BatchProcessor
from services.kafka.admin import ensure_topics
from tests.service.harness import stored_ids, wait_for

pytestmark = [pytest.mark.kafka]


@pytest.mark.parametrize("error", [TransientError("injected"), RuntimeError("injected")])
async def test_a_failed_multi_partition_batch_is_redelivered_on_every_partition(
    error: Exception,
    service_settings: Callable[..., Settings],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = service_settings(sqlite_url)
    settings.kafka.batch_max_records = 500
    settings.kafka.batch_max_wait_ms = 3000
    await ensure_topics(settings.kafka)
    topic = settings.kafka.input_topics[0]

    sent: list[str] = []
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(90):
            msg = SubmittedText(message_id=f"r-{i}", text=f"text number {i}", source="t")
            await producer.send_and_wait(topic, msg.model_dump_json().encode(), partition=i % 3)
            sent.append(msg.message_id)
    finally:
        await producer.stop()

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
