"""Topic layout from the cluster's size, and the service's start-up check on the real broker
(the three-broker side is in test_replicated_cluster.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from depdetect.settings import KafkaSettings, Settings
from services.kafka.admin import TopicLayout, ensure_topics
from tests.service.harness import ServiceProcess


@pytest.mark.parametrize(
    ("brokers", "overrides", "expected"),
    [
        (1, {}, (1, 1)),
        (2, {}, (2, 1)),
        (3, {}, (3, 2)),
        (5, {}, (3, 2)),
        (3, {"replication_factor": 2}, (2, 1)),
        (3, {"min_insync_replicas": 1}, (3, 1)),
    ],
)
def test_replication_follows_the_cluster_unless_set(
    brokers: int, overrides: dict[str, int], expected: tuple[int, int]
) -> None:
    layout = TopicLayout.for_cluster(KafkaSettings(**overrides), brokers)  # type: ignore[arg-type]
    assert (layout.replication_factor, layout.min_insync_replicas) == expected


@pytest.mark.kafka
async def test_the_service_refuses_missing_topics_in_one_line(
    make_settings: Callable[..., Settings], tiny_bundle: Path, tmp_path: Path
) -> None:
    settings = make_settings(model={"bundle_path": tiny_bundle})
    await ensure_topics(settings.kafka, [settings.kafka.review_topic])
    service = ServiceProcess(settings, tmp_path / "svc.log")
    with pytest.raises(AssertionError, match="service exited"):
        service.start(ready_timeout=60)
    last = service.log().strip().splitlines()[-1]
    missing = f"{settings.kafka.input_topics[0]}, {settings.kafka.dead_letter_topic}"
    assert last.startswith("Kafka topics not usable: topic(s) missing on"), last
    assert missing in last and "create them with `depdetect broker topics`" in last, last


@pytest.mark.kafka
async def test_group_state_reports_a_formed_group(kafka_settings: KafkaSettings) -> None:
    """What the service benchmark waits for before timing a drain: the group is Stable
    with every member once a consumer has joined and been given its partitions."""
    from aiokafka import AIOKafkaConsumer

    from services.kafka.admin import admin_client, group_state

    topic = kafka_settings.input_topics[0]
    await ensure_topics(kafka_settings, [topic])
    async with admin_client(kafka_settings) as admin:
        assert (await group_state(admin, kafka_settings.consumer_group))[1] == 0
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_settings.bootstrap_servers,
            group_id=kafka_settings.consumer_group,
        )
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=3000)  # joins the group and gets partitions
            assert consumer.assignment()
            assert await group_state(admin, kafka_settings.consumer_group) == ("Stable", 1)
        finally:
            await consumer.stop()


async def test_min_isr_of_a_topic_the_broker_does_not_know_yet_is_asked_again() -> None:
    """A broker that has not heard of a topic created a moment ago answers with an error
    and no entries: that is not "no requirement" (it once passed a topic whose default
    min.insync.replicas of 2 sat on one replica); it is asked again, and a topic that
    stays unreadable is the environment's fault, not a pass."""
    from types import SimpleNamespace
    from typing import Any

    from schemas.errors import TransientError
    from services.kafka.admin import MIN_ISR, _min_isr

    class LaggingBroker:
        def __init__(self, unknown_for: int) -> None:
            self.calls = 0
            self.unknown_for = unknown_for

        async def describe_configs(self, resources: list[Any]) -> list[SimpleNamespace]:
            self.calls += 1
            known = self.calls > self.unknown_for
            return [
                SimpleNamespace(
                    resources=[
                        (0, None, 2, r.name, [(MIN_ISR, "2")]) if known else (3, "", 2, r.name, [])
                        for r in resources
                    ]
                )
            ]

    lagging = LaggingBroker(unknown_for=2)
    assert await _min_isr(lagging, ["t"], timeout_s=5) == {"t": 2}  # type: ignore[arg-type]
    assert lagging.calls == 3
    with pytest.raises(TransientError, match=r"cannot read min.insync.replicas of t \(error 3\)"):
        await _min_isr(LaggingBroker(unknown_for=10**6), ["t"], timeout_s=0.5)  # type: ignore[arg-type]
