"""Topic administration with aiokafka's admin client (no Kafka CLI tools needed).

Replication follows the cluster unless settings say otherwise: three replicas with
``min.insync.replicas`` 2 on three brokers or more (one broker may die without losing a
confirmed write, and writes go on), one of each on a single node. The service checks its
topics at start (:func:`verify_topics`) and refuses to run on topics that cannot keep
that promise, with one line that says what is wrong and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from depdetect.settings import KafkaSettings
from schemas.errors import ConfigurationError, TransientError

log = logging.getLogger(__name__)

MIN_ISR = "min.insync.replicas"


def project_topics(settings: KafkaSettings) -> list[str]:
    """Every topic the project reads or writes."""
    return [
        *settings.input_topics,
        settings.review_topic,
        settings.dead_letter_topic,
        settings.decision_topic,
    ]


@dataclass(frozen=True)
class TopicLayout:
    """How the project's topics are (to be) laid out on a cluster of ``brokers`` brokers."""

    brokers: int
    partitions: int
    replication_factor: int
    min_insync_replicas: int

    @classmethod
    def for_cluster(
        cls, settings: KafkaSettings, brokers: int, partitions: int | None = None
    ) -> TopicLayout:
        replication = settings.replication_factor or max(1, min(3, brokers))
        min_isr = settings.min_insync_replicas or max(1, min(2, replication - 1))
        return cls(brokers, partitions or settings.partitions, replication, min_isr)


@contextlib.asynccontextmanager
async def admin_client(
    settings: KafkaSettings, timeout_s: float = 30.0
) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError) as exc:
        await admin.close()
        raise TransientError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc!r}; "
            "start one with `depdetect broker start`"
        ) from exc
    try:
        yield admin
    finally:
        await admin.close()


async def cluster_brokers(admin: AIOKafkaAdminClient) -> list[tuple[str, int]]:
    """(host, port) of every broker the cluster reports."""
    cluster = await admin.describe_cluster()
    return [(b["host"], int(b["port"])) for b in cluster["brokers"]]


async def group_state(admin: AIOKafkaAdminClient, group: str) -> tuple[str, int]:
    """(state, members) of a consumer group: ``Stable`` once a rebalance has completed and
    every member holds its partitions."""
    (response,) = await admin.describe_consumer_groups([group])
    _, _, state, _, _, members = response.groups[0][:6]
    return str(state), len(members)


async def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names that were created."""
    wanted = list(topics) if topics is not None else project_topics(settings)
    async with admin_client(settings, timeout_s) as admin:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(wanted) if t not in existing]
        if not missing:
            return []
        layout = TopicLayout.for_cluster(settings, len(await cluster_brokers(admin)), partitions)
        new = [
            NewTopic(
                name=t,
                num_partitions=layout.partitions,
                replication_factor=layout.replication_factor,
                topic_configs={MIN_ISR: str(layout.min_insync_replicas)},
            )
            for t in missing
        ]
        try:
            response = await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
        except TopicAlreadyExistsError:
            # Another process created them between list and create: that is fine.
            log.debug("topics appeared concurrently: %s", missing)
            return missing
        for topic, code, *rest in response.topic_errors:
            # 36: already exists (created concurrently); anything else is a refusal.
            if code not in (0, 36):
                message = rest[0] if rest else ""
                raise ConfigurationError(
                    f"Kafka refused to create topic {topic} with {layout.replication_factor} "
                    f"replica(s) on {layout.brokers} broker(s): error {code} {message}"
                )
        await _until_visible(admin, missing, timeout_s)
        return missing


async def _until_visible(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float) -> None:
    """Wait until the brokers' metadata shows new topics: on a cluster it reaches each
    broker a moment after the create returns, and a check made before would miss them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not set(topics) <= set(await admin.list_topics()):
        if asyncio.get_running_loop().time() > deadline:
            raise TransientError(f"topics created but not visible after {timeout_s}s: {topics}")
        await asyncio.sleep(0.2)


async def verify_topics(
    settings: KafkaSettings,
    topics: Iterable[str] | None = None,
    *,
    timeout_s: float = 30.0,
) -> TopicLayout:
    """Check that the topics exist with the replication this cluster needs.

    Raises :class:`ConfigurationError` with one line naming every problem and the fix;
    a partition count other than the setting is only logged (it bounds the members
    that get work, it cannot lose a record). Returns the layout checked against.
    """
    wanted = list(dict.fromkeys(topics if topics is not None else project_topics(settings)))
    async with admin_client(settings, timeout_s) as admin:
        layout = TopicLayout.for_cluster(settings, len(await cluster_brokers(admin)))
        # All topics, not the wanted ones by name: a metadata request that names a topic
        # creates it on a broker with auto.create.topics.enable, with the wrong layout.
        described = {d["topic"]: d for d in await admin.describe_topics(None)}
        present = [t for t in wanted if t in described]
        min_isr = await _min_isr(admin, present, timeout_s) if present else {}
    missing = [t for t in wanted if t not in described]
    under_replicated: list[str] = []
    weak_isr: list[str] = []
    for topic in present:
        parts = described[topic]["partitions"]
        replication = min((len(p["replicas"]) for p in parts), default=0)
        isr = min_isr[topic]
        if replication < layout.replication_factor:
            under_replicated.append(f"{topic} ({replication})")
        elif not layout.min_insync_replicas <= isr <= replication:
            weak_isr.append(f"{topic} ({isr})")
        if len(parts) != layout.partitions and topic in settings.input_topics:
            log.warning(
                "topic %s has %d partitions, the setting says %d: at most %d members get work",
                topic,
                len(parts),
                layout.partitions,
                len(parts),
            )
    problems = []
    if missing:
        problems.append(
            f"topic(s) missing on {settings.bootstrap_servers}: {', '.join(missing)}; "
            "create them with `depdetect broker topics`"
        )
    if under_replicated:
        problems.append(
            f"topic(s) with fewer replicas than the {layout.replication_factor} this "
            f"{layout.brokers}-broker cluster needs: {', '.join(under_replicated)}; recreate "
            "them, or accept it with DEPDETECT_KAFKA__REPLICATION_FACTOR"
        )
    if weak_isr:
        problems.append(
            f"topic(s) whose {MIN_ISR} is not {layout.min_insync_replicas}: "
            f"{', '.join(weak_isr)}; set it with kafka-configs --alter --add-config "
            f"{MIN_ISR}={layout.min_insync_replicas}, or accept it with "
            "DEPDETECT_KAFKA__MIN_INSYNC_REPLICAS"
        )
    if problems:
        raise ConfigurationError("Kafka topics not usable: " + "; ".join(problems))
    return layout


async def _min_isr(
    admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 30.0
) -> dict[str, int]:
    """Each topic's effective min.insync.replicas (its own or the broker's default).

    The broker that answers may not know a topic created a moment ago and answers with an
    error and no entries for it; that is asked again until the deadline rather than read
    as "no requirement" (which once let a topic with the default of 2 on one replica
    pass the check)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    out: dict[str, int] = {}
    while True:
        pending = [t for t in topics if t not in out]
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in pending]
        )
        errors: dict[str, int] = {}
        for response in responses:
            for code, _message, _type, name, entries in response.resources:
                if code:
                    errors[name] = code
                    continue
                for entry in entries:
                    if entry[0] == MIN_ISR:
                        out[name] = int(entry[1])
        if all(t in out for t in topics):
            return out
        if asyncio.get_running_loop().time() > deadline:
            unread = ", ".join(f"{t} (error {errors.get(t, 'none')})" for t in pending)
            raise TransientError(f"cannot read {MIN_ISR} of {unread} after {timeout_s}s")
        await asyncio.sleep(0.2)


class BrokerQuorum:
    """Can writes with acks=all go through? Counts the cluster's brokers that accept a TCP
    connection, against the topics' ``min.insync.replicas``.

    Cheap enough for every health probe (no Kafka request), and it still answers when the
    cluster has lost its controller quorum and its metadata no longer changes.
    """

    def __init__(self, brokers: list[tuple[str, int]], min_insync_replicas: int) -> None:
        self.brokers = brokers
        self.min_insync_replicas = min_insync_replicas

    @classmethod
    async def discover(cls, settings: KafkaSettings, layout: TopicLayout) -> BrokerQuorum:
        async with admin_client(settings) as admin:
            return cls(await cluster_brokers(admin), layout.min_insync_replicas)

    async def check(self, timeout_s: float = 1.0) -> tuple[bool, str]:
        """(writes can succeed, why not)."""
        up = sum(await asyncio.gather(*(_accepts(h, p, timeout_s) for h, p in self.brokers)))
        if up >= self.min_insync_replicas:
            return True, ""
        return False, (
            f"{len(self.brokers) - up} of {len(self.brokers)} Kafka brokers unreachable; "
            f"writes need {self.min_insync_replicas} in-sync replicas: "
            "consumption is paused until they return"
        )


async def _accepts(host: str, port: int, timeout_s: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check_topics(settings: KafkaSettings) -> BrokerQuorum:
    """The service's start-up check: its topics are usable, or it stops with one line."""
    topics = [*settings.input_topics, settings.review_topic, settings.dead_letter_topic]
    try:
        layout = await verify_topics(settings, topics)
        return await BrokerQuorum.discover(settings, layout)
    except (ConfigurationError, TransientError) as exc:
        raise SystemExit(str(exc)) from None
