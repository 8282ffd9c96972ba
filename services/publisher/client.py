"""Publish submitted texts to the input topic. Usable from any Python program:

async with TextPublisher(settings.kafka) as pub:
    await pub.publish(SubmittedText(message_id="m1", text="…", source="forum"))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer

from depdetect.settings import KafkaSettings
from schemas.messages import SubmittedText, encode


def message_key(message: SubmittedText) -> bytes:
    """Same author → same partition → per-author order; else spread by message id."""
    return (message.author_ref or message.message_id).encode("utf-8")


class TextPublisher:
    def __init__(self, settings: KafkaSettings, *, topic: str | None = None) -> None:
        self._settings = settings
        self.topic = topic or settings.input_topics[0]
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-publisher",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )

    async def __aenter__(self) -> TextPublisher:
        await self._producer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._producer.stop()

    async def publish(self, message: SubmittedText) -> None:
        await self._producer.send_and_wait(self.topic, encode(message), key=message_key(message))

    async def publish_many(
        self, messages: Iterable[SubmittedText], *, window: int = 500
    ) -> AsyncIterator[int]:
        """Send with up to ``window`` in flight; yields the running count as acks arrive."""
        pending: list[Any] = []
        sent = 0
        for message in messages:
            pending.append(
                await self._producer.send(self.topic, encode(message), key=message_key(message))
            )
            if len(pending) >= window:
                for fut in pending:
                    await fut
                sent += len(pending)
                pending.clear()
                yield sent
        for fut in pending:
            await fut
        sent += len(pending)
        if pending:
            yield sent
