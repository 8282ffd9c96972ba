"""Publishes unpublished decision rows and marks them, in revision order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from schemas.errors import TransientError
from schemas.messages import Decision, ModeratorDecision, utcnow
from schemas.tables import DecisionRow, ResultRow
from services.api.outbox.sink import DecisionSink

log = logging.getLogger(__name__)


def decision_event(row: DecisionRow, *, message_id: str) -> ModeratorDecision:
    return ModeratorDecision(
        decision_id=row.decision_id,
        message_id=message_id,
        result_id=row.result_id,
        decision=Decision(row.decision),
        moderator_id=row.moderator_id,
        note=row.note,
        revision=row.revision,
        decided_at=row.decided_at,
    )


class DecisionRelay:
    """One pass publishes everything pending; ``run`` repeats a pass when woken by
    ``wake()`` (after a decision) or every ``interval_s`` (to retry after failures)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        sink: DecisionSink,
        batch_size: int = 100,
        interval_s: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._sink = sink
        self._batch_size = batch_size
        self._interval_s = interval_s
        # One pass at a time in this process; other processes may still overlap,
        # which at-least-once delivery allows.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def _pending(self) -> list[tuple[int, ModeratorDecision]]:
        with self._sessions() as session:
            rows = session.execute(
                select(DecisionRow, ResultRow.message_id)
                .join(ResultRow, ResultRow.id == DecisionRow.result_id)
                .where(DecisionRow.event_published_at.is_(None))
                .order_by(DecisionRow.id)
                .limit(self._batch_size)
            ).all()
            return [(row.id, decision_event(row, message_id=mid)) for row, mid in rows]

    def _mark(self, ids: list[int], when: datetime) -> None:
        with self._sessions() as session, session.begin():
            session.execute(
                update(DecisionRow)
                .where(DecisionRow.id.in_(ids), DecisionRow.event_published_at.is_(None))
                .values(event_published_at=when)
            )

    async def publish_pending(self) -> int:
        """Publish until nothing is pending; returns how many were published.
        Raises TransientError when the broker or the database fails; what was not
        published stays pending."""
        published = 0
        async with self._lock:
            while True:
                try:
                    batch = await asyncio.to_thread(self._pending)
                except SQLAlchemyError as exc:
                    raise TransientError(f"reading pending decisions failed: {exc}") from exc
                if not batch:
                    return published
                sent: list[int] = []
                try:
                    for row_id, event in batch:
                        # Sequential, so that a failure never publishes a later revision
                        # before an earlier one.
                        await self._sink.send(event)
                        sent.append(row_id)
                finally:
                    if sent:
                        await asyncio.to_thread(self._mark, sent, utcnow())
                        published += len(sent)

    def wake(self) -> None:
        """Ask for a pass now; safe to call from worker threads."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """End ``run`` after the current pass (cancellation alone can be lost, below)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            try:
                count = await self.publish_pending()
                if count:
                    log.info("published %d decision events", count)
            except TransientError as exc:
                log.warning("decision events stay pending, retrying: %s", exc)
            except SQLAlchemyError as exc:
                log.warning("marking decision events failed, retrying: %s", exc)
            # Woken by a new decision, or the interval passes and failures are retried.
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that arrives as the event is set, and the loop never ended.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
