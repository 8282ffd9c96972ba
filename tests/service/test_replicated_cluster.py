"""Replicated topics on a real three-broker cluster (KRaft, ``deploy/kafka/kafka.sh``),
private to this module: its own state directory and ports, stopped afterwards.

- topics are created with three replicas and ``min.insync.replicas`` 2, and the service's
  start-up check refuses topics replicated less;
- the leader of the input partitions is SIGKILLed mid-stream and restarted later:
  nothing lost, no row twice, every flag with a review event;
- two of three brokers die with flagged traffic in flight: the service pauses and
  /health says why, nothing is lost, and it resumes by itself when they return.

Every wait is bounded and generous (a 2-core CI machine runs three JVMs here); nothing
asserts on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from depdetect.settings import KafkaSettings, Settings
from schemas.errors import ConfigurationError
from services.kafka.admin import (
    MIN_ISR,
    TopicLayout,
    admin_client,
    ensure_topics,
    verify_topics,
)
from tests.service.harness import ServiceProcess, wait_for
from tests.support.kafka_cluster import KafkaCluster
from tests.support.ledger import Ledger, texts

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    c = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"))
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture
def whole_cluster(cluster: KafkaCluster) -> KafkaCluster:
    """The cluster with every node up (a previous test may have failed mid-fault)."""
    for node in range(1, cluster.nodes + 1):
        cluster.restart(node)  # a no-op for a running node
    cluster.wait()
    return cluster


@pytest.fixture
def cluster_settings(
    whole_cluster: KafkaCluster,
    service_settings: Callable[..., Settings],
    fresh_postgres_url: str,
) -> Settings:
    settings = service_settings(fresh_postgres_url)
    settings.kafka.bootstrap_servers = whole_cluster.bootstrap
    settings.kafka.batch_max_records = 16
    return settings


async def _leader(settings: Settings, topic: str, partition: int) -> int:
    async with admin_client(settings.kafka) as admin:
        (described,) = await admin.describe_topics([topic])
    return next(int(p["leader"]) for p in described["partitions"] if p["partition"] == partition)


async def test_topics_get_three_replicas_and_the_check_refuses_fewer(
    cluster_settings: Settings,
) -> None:
    kafka = cluster_settings.kafka
    await ensure_topics(kafka)
    layout = await verify_topics(kafka)
    assert (layout.brokers, layout.replication_factor, layout.min_insync_replicas) == (3, 3, 2)
    async with admin_client(kafka) as admin:
        for described in await admin.describe_topics([kafka.review_topic]):
            assert {len(p["replicas"]) for p in described["partitions"]} == {3}
        # Topics made by hand with one replica: the service must not start on them.
        response = await admin.create_topics(
            [
                NewTopic(f"{kafka.dead_letter_topic}-1", 3, 1),
                NewTopic(f"{kafka.dead_letter_topic}-2", 3, 1, topic_configs={MIN_ISR: "1"}),
            ]
        )
        assert [code for _, code, *_ in response.topic_errors] == [0, 0], response
    weak = kafka.model_copy(update={"dead_letter_topic": f"{kafka.dead_letter_topic}-1"})
    with pytest.raises(ConfigurationError, match=r"fewer replicas than the 3.*-1 \(1\)"):
        await _verify_once_every_broker_knows(weak)
    # Accepting one replica knowingly is possible, but not the broker's default min ISR of 2
    # on it: no write could ever succeed.
    one = {"replication_factor": 1}
    with pytest.raises(ConfigurationError, match=r"min.insync.replicas is not 1: .*-1 \(2\)"):
        await _verify_once_every_broker_knows(weak.model_copy(update=one))
    fine = kafka.model_copy(update={"dead_letter_topic": f"{kafka.dead_letter_topic}-2", **one})
    assert (await _verify_once_every_broker_knows(fine)).replication_factor == 1


async def _verify_once_every_broker_knows(
    kafka: KafkaSettings, timeout: float = 30.0
) -> TopicLayout:
    """``verify_topics`` on topics just created by hand: a new topic's metadata reaches each
    broker a moment after the create returns, and the check may ask one that has not heard
    of it yet ("missing"). Any other verdict, or "missing" past the deadline, stands."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await verify_topics(kafka)
        except ConfigurationError as error:
            if "missing" not in str(error) or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.5)


async def test_leader_of_the_input_partitions_killed_mid_stream(
    cluster: KafkaCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    await ensure_topics(settings.kafka)
    ledger = Ledger(settings)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        await ledger.publish(texts("before", 240))
        await ledger.wait_for_rows(40, timeout=180)
        leader = await _leader(settings, settings.kafka.input_topics[0], 0)
        cluster.kill(leader)  # SIGKILL while batches are in flight
        # The stream goes on through the failover.
        await ledger.publish(texts("during", 240))
        await ledger.wait_for_rows(300, timeout=240)
        cluster.restart(leader)
        cluster.wait()
        await ledger.publish(texts("after", 120))
        report = await ledger.assert_holds(timeout=300, max_duplicate_reviews=64)
        print("leader kill:", report.summary())
        assert report.rows == 600 and report.flagged > 0
        assert service.proc is not None and service.proc.poll() is None, "it never exited"
        await wait_for(lambda: service.health()[0] == 200, timeout=60, what="ready again")
    finally:
        assert service.terminate() == 0, service.log()


async def test_two_of_three_brokers_down_pauses_and_resumes(
    cluster: KafkaCluster, cluster_settings: Settings, tmp_path: Path
) -> None:
    settings = cluster_settings
    await ensure_topics(settings.kafka)
    ledger = Ledger(settings)
    service = ServiceProcess(settings, tmp_path / "svc.log").start()
    try:
        await ledger.publish(texts("inflight", 400))
        await ledger.wait_for_rows(30, timeout=180)
        down = [2, 3]
        for node in down:
            cluster.kill(node)

        def paused_with_reason() -> bool:
            status, body = service.health()
            checks = body.get("checks", {})
            return status == 503 and checks.get("kafka_write_quorum") is False  # type: ignore[union-attr]

        await wait_for(paused_with_reason, timeout=90, what="/health to say writes lack replicas")
        status, body = service.health()
        assert "unreachable" in str(body.get("reasons", {})), body
        await asyncio.sleep(10)  # a while in the paused state
        assert service.proc is not None and service.proc.poll() is None, "it paused, not died"

        for node in down:
            cluster.restart(node)
        cluster.wait()
        report = await ledger.assert_holds(timeout=300, max_duplicate_reviews=64)
        print("two of three down:", report.summary())
        assert report.rows == 400 and report.flagged > 0
        await wait_for(lambda: service.health()[0] == 200, timeout=120, what="resumed by itself")
        assert service.proc.poll() is None
    finally:
        assert service.terminate() == 0, service.log()
