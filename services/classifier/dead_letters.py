"""Dead letters back to work: pick them by reason or offset and re-publish the original
bytes (and key) to the topic they came from, once whatever made them fail is fixed (a
consumer that reads a newer schema_version, a database rule relaxed, a bug fixed)."""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from depdetect.settings import KafkaSettings
from schemas.errors import ContractError
from schemas.messages import DeadLetter, decode
from services.kafka.reading import read_topic

#: Header on a replayed record: where in the dead-letter topic it came from.
REPLAYED_FROM = "depdetect-replayed-from"


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    letter: DeadLetter


@dataclass
class ReplayPlan:
    chosen: list[Letter] = field(default_factory=list)
    #: Truncated letters no longer hold the original bytes: they cannot be replayed.
    truncated: list[Letter] = field(default_factory=list)
    unreadable: int = 0
    considered: int = 0

    def reasons(self) -> Counter[str]:
        return Counter(item.letter.reason for item in self.chosen)


async def plan_replay(
    settings: KafkaSettings,
    *,
    reason: str | None = None,
    partition: int | None = None,
    from_offset: int | None = None,
    to_offset: int | None = None,
    idle_s: float = 2.0,
) -> ReplayPlan:
    """The dead letters that match every given filter (offsets: in the dead-letter topic,
    ``to_offset`` included)."""
    plan = ReplayPlan()
    records = await read_topic(
        settings.bootstrap_servers, settings.dead_letter_topic, idle_s=idle_s, timeout_s=120
    )
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        plan.considered += 1
        if partition is not None and record.partition != partition:
            continue
        if from_offset is not None and record.offset < from_offset:
            continue
        if to_offset is not None and record.offset > to_offset:
            continue
        try:
            letter = decode(DeadLetter, record.value or b"")
        except ContractError:
            plan.unreadable += 1
            continue
        if reason is not None and reason.lower() not in letter.reason.lower():
            continue
        item = Letter(record.partition, record.offset, letter)
        (plan.truncated if letter.truncated else plan.chosen).append(item)
    return plan


async def replay(settings: KafkaSettings, plan: ReplayPlan, *, topic: str | None = None) -> int:
    """Publish each chosen letter's original bytes and key to its source topic (or
    ``topic``), with the original headers; returns how many the broker confirmed."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_request_size=settings.max_request_bytes,
    )
    await producer.start()
    try:
        futures = []
        for item in plan.chosen:
            letter = item.letter
            headers = [(k, v.encode("utf-8", "surrogateescape")) for k, v in letter.headers.items()]
            headers.append(
                (
                    REPLAYED_FROM,
                    f"{settings.dead_letter_topic}:{item.partition}@{item.offset}".encode(),
                )
            )
            futures.append(
                await producer.send(
                    topic or letter.source_topic,
                    base64.b64decode(letter.payload_b64),
                    key=base64.b64decode(letter.key_b64) if letter.key_b64 else None,
                    headers=headers,
                )
            )
        for future in futures:
            await future
        return len(futures)
    finally:
        await producer.stop()
