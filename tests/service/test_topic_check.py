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
