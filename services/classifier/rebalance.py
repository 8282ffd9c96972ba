"""Handing partitions over at a rebalance without scoring a batch twice.

When a member joins or leaves the group, Kafka takes partitions away from a member that
may be in the middle of a batch. Its offsets are committed only after the batch's rows
and events, so without this the commit fails (the group has moved on) and the new
owner consumes the whole batch again: harmless (writes are idempotent, review events go
through the outbox) but wasted work at exactly the moment the group is growing.

aiokafka calls ``on_partitions_revoked`` before the member rejoins, with its heartbeat
still running, and waits for it: the place to let the batch in flight finish and commit.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

log = logging.getLogger(__name__)


class BatchInFlight:
    """Whether a batch is being processed; ``idle`` is set once it is committed or rewound."""

    def __init__(self) -> None:
        self.idle = asyncio.Event()
        self.idle.set()

    def started(self) -> None:
        self.idle.clear()

    def ended(self) -> None:
        self.idle.set()


class FinishBatchBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch in flight is committed, for at most ``wait_s``
    (under the group's rebalance timeout, max.poll.interval: a member that does not
    rejoin within it is dropped from the group)."""

    def __init__(self, batch: BatchInFlight, wait_s: float) -> None:
        self.batch = batch
        self.wait_s = wait_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if self.batch.idle.is_set() or not revoked:
            return
        log.info("rebalance: finishing the batch in flight before handing partitions over")
        try:
            await asyncio.wait_for(self.batch.idle.wait(), self.wait_s)
        except TimeoutError:
            log.warning(
                "rebalance: the batch in flight did not finish within %.0fs; its partitions "
                "go to their new owner, which will process it again (writes are idempotent)",
                self.wait_s,
            )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
