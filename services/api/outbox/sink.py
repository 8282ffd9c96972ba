"""Where decision events go: the decision topic on Kafka (a protocol, so tests can fail it)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from depdetect.settings import KafkaSettings
from schemas.errors import TransientError
from schemas.messages import ModeratorDecision, encode


class DecisionSink(Protocol):
    async def send(self, event: ModeratorDecision) -> None:
        """Return once the event is durably on the broker; raise TransientError if not."""

    async def close(self) -> None: ...


class KafkaDecisionSink:
    """Publishes to ``settings.decision_topic``, keyed by message id so that the
    revisions of one result stay in order on one partition."""

    def __init__(self, settings: KafkaSettings, *, timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def _started(self) -> AIOKafkaProducer:
        # Started on first use: the API serves reads even while the broker is down.
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id=f"{self._settings.client_id}-decisions",
                acks="all",
                enable_idempotence=True,
                request_timeout_ms=int(self._timeout_s * 1000),
            )
            try:
                await asyncio.wait_for(producer.start(), self._timeout_s)
            except (KafkaError, OSError, TimeoutError) as exc:
                await producer.stop()
                raise TransientError(
                    f"cannot reach Kafka at {self._settings.bootstrap_servers}: {exc!r}"
                ) from exc
            self._producer = producer
        return self._producer

    async def send(self, event: ModeratorDecision) -> None:
        producer = await self._started()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(
                    self._settings.decision_topic,
                    encode(event),
                    key=event.message_id.encode("utf-8"),
                ),
                self._timeout_s,
            )
        except (KafkaError, TimeoutError) as exc:
            raise TransientError(
                f"publishing decision {event.decision_id} to "
                f"{self._settings.decision_topic} failed: {exc!r}"
            ) from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
