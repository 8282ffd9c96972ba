"""A real round trip through the real broker: admin-created topics, keyed produce,
consumer-group consume, per-partition order preserved."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from depdetect.settings import KafkaSettings
from schemas.messages import SubmittedText, decode
from services.kafka.admin import ensure_topics, project_topics
from services.publisher.client import TextPublisher, message_key

pytestmark = pytest.mark.kafka


async def test_admin_creates_topics_with_partitions_and_is_idempotent(
    kafka_settings: KafkaSettings,
) -> None:
    created = await ensure_topics(kafka_settings)
    assert sorted(created) == sorted(project_topics(kafka_settings))
    assert await ensure_topics(kafka_settings) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([kafka_settings.input_topics[0]])
        assert len(described[0]["partitions"]) == kafka_settings.partitions
    finally:
        await admin.close()


async def test_keyed_messages_come_back_in_order_per_partition(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings)
    topic = kafka_settings.input_topics[0]
    authors = [f"author-{i}" for i in range(6)]
    sent = [
        SubmittedText(message_id=f"m-{n:03d}", text=f"text {n}", author_ref=authors[n % 6])
        for n in range(120)
    ]
    async with TextPublisher(kafka_settings) as pub:
        async for _ in pub.publish_many(sent, window=25):
            pass

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id=kafka_settings.consumer_group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[int, bytes | None, SubmittedText]] = []
    try:
        async with asyncio.timeout(60):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received += [
                        (r.partition, r.key, decode(SubmittedText, r.value)) for r in records
                    ]
        await consumer.commit()
        assert consumer.assignment(), "the group gave this consumer partitions"
    finally:
        await consumer.stop()

    assert sorted(m.message_id for _, _, m in received) == [m.message_id for m in sent]
    by_author: dict[str, set[int]] = defaultdict(set)
    per_partition: dict[int, list[str]] = defaultdict(list)
    for partition, key, message in received:
        assert key == message_key(message)
        by_author[message.author_ref or ""].add(partition)
        per_partition[partition].append(message.message_id)
    # One key, one partition; and within a partition, the order they were sent in.
    assert all(len(parts) == 1 for parts in by_author.values())
    for ids in per_partition.values():
        assert ids == sorted(ids)
    assert len(per_partition) > 1, "keys spread over several partitions"


async def test_committed_group_offsets_resume_after_restart(kafka_settings: KafkaSettings) -> None:
    await ensure_topics(kafka_settings, partitions=1)
    topic = kafka_settings.input_topics[0]
    async with TextPublisher(kafka_settings) as pub:
        for n in range(10):
            await pub.publish(SubmittedText(message_id=f"r-{n}", text="x"))

    async def consume(count: int, commit: bool) -> list[str]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_settings.bootstrap_servers,
            group_id=kafka_settings.consumer_group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=count,
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                got: list[str] = []
                while len(got) < count:
                    for records in (
                        await consumer.getmany(timeout_ms=500, max_records=count - len(got))
                    ).values():
                        got += [decode(SubmittedText, r.value).message_id for r in records]
            if commit:
                await consumer.commit()
            return got
        finally:
            await consumer.stop()

    first = await consume(4, commit=True)
    rest = await consume(6, commit=True)
    assert first == [f"r-{n}" for n in range(4)]
    assert rest == [f"r-{n}" for n in range(4, 10)]
