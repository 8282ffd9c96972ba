"""Topic administration with aiokafka's admin client (no Kafka CLI tools needed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from depdetect.settings import KafkaSettings
from schemas.errors import TransientError

log = logging.getLogger(__name__)


def project_topics(settings: KafkaSettings) -> list[str]:
    """Every topic the project reads or writes."""
    return [
        *settings.input_topics,
        settings.review_topic,
        settings.dead_letter_topic,
        settings.decision_topic,
    ]


async def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str] | None = None,
    *,
    partitions: int | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names that were created."""
    wanted = list(topics) if topics is not None else project_topics(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError) as exc:
        raise TransientError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc!r}; "
            "start one with `depdetect broker start`"
        ) from exc
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(wanted) if t not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name=t,
                num_partitions=partitions or settings.partitions,
                replication_factor=settings.replication_factor,
            )
            for t in missing
        ]
        try:
            await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
        except TopicAlreadyExistsError:
            # Another process created them between list and create: that is fine.
            log.debug("topics appeared concurrently: %s", missing)
        return missing
    finally:
        await admin.close()
