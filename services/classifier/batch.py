"""The work on one consumed batch: validate, dead-letter, score, write, emit reviews.

Order matters for the delivery guarantee. Dead letters are confirmed by the broker,
results are committed to the database, review events are confirmed by the broker and
then marked in the outbox — and only after all of that does the caller commit offsets.
A crash anywhere before the commit replays the batch; idempotent writes and the
outbox make the replay harmless.

No record can stall the batch (see ``failure_policy``): when scoring or the database
write fails for a reason that is not transient, the work is bisected until the failure
is pinned on single records, which are dead-lettered; the rest goes through.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from aiokafka.errors import MessageSizeTooLargeError

from depdetect.settings import Settings, StoreUnflagged
from schemas.messages import Label, ReviewRequest, encode, utcnow
from schemas.tables import ReviewStatus
from schemas.text import resolve_language
from services.classifier.failure_policy import (
    FatalError,
    Fault,
    classify,
    describe,
    error_type,
)
from services.classifier.metrics import ServiceMetrics
from services.classifier.records import (
    Accepted,
    Rejected,
    dead_letter,
    fit_dead_letter,
    sort_records,
)
from services.inference.runner import ModelRunner
from services.storage.results import PendingReview, ResultStore

log = logging.getLogger(__name__)

#: publish(topic, value, key, headers) -> awaitable confirmed by the broker
Publish = Callable[[str, bytes, bytes | None, dict[str, str]], Awaitable[Any]]
#: run a blocking call with transient-error retries
Retry = Callable[..., Awaitable[Any]]
#: Exit status of a test-only crash point (``ServiceSettings.crash_after``).
CRASH_EXIT_CODE = 86
CrashStep = Literal["dead_letters", "rows", "reviews", "outbox"]
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchOutcome:
    consumed: int
    classified: int
    stored: int
    flagged: int
    dead_lettered: int
    reviews_published: int
    #: Where the batch's time went (ms): model, database write, review publishing.
    timings_ms: dict[str, float]

    def counts(self) -> tuple[int, int, int, int, int, int]:
        """The counts in field order (consumed ... reviews_published)."""
        return (
            self.consumed,
            self.classified,
            self.stored,
            self.flagged,
            self.dead_lettered,
            self.reviews_published,
        )

    def plus(self, other: BatchOutcome) -> BatchOutcome:
        """Counts added up; timings belong to one batch, so a sum carries none."""
        summed = (a + b for a, b in zip(self.counts(), other.counts(), strict=True))
        consumed, classified, stored, flagged, dead_lettered, reviews = summed
        return BatchOutcome(consumed, classified, stored, flagged, dead_lettered, reviews, {})


@dataclass(frozen=True)
class _Stored:
    """What writing one stripe of a batch did."""

    stored: int
    flagged: int
    refused: int
    published: int
    write_ms: float
    publish_ms: float


class BatchProcessor:
    def __init__(
        self,
        *,
        settings: Settings,
        runner: ModelRunner,
        store: ResultStore,
        publish: Publish,
        retry: Retry,
        metrics: ServiceMetrics,
    ) -> None:
        self.settings = settings
        self.runner = runner
        self.store = store
        self.publish = publish
        self.retry = retry
        self.metrics = metrics
        self.threshold = (
            settings.model.threshold if settings.model.threshold is not None else runner.threshold
        )
        #: Review rows this process is publishing now, by id, and the task doing it.
        self._publishing: dict[int, asyncio.Future[None]] = {}

    async def process(self, records: Sequence[Any]) -> BatchOutcome:
        """The batch in stripes of ``model.stripe_size`` texts (unset: one stripe) of
        similar length (less padding): while the model scores a stripe, the one before it
        is written and its reviews published (one write at a time, in order). Everything
        is confirmed before this returns, so the caller still commits offsets only after
        every row and event of the batch."""
        started = time.perf_counter()
        for record in records:
            self.metrics.consumed.labels(record.topic).inc()
        self.metrics.batch_size.observe(len(records))
        accepted, rejected = sort_records(
            records, max_text_chars=self.settings.contract.max_text_chars
        )
        await self.dead_letter(rejected)
        size = self.settings.model.stripe_size or max(1, len(records))
        # Rows and events of one batch carry no order among themselves (rows are keyed by
        # message id, events by author): sorting only changes which stripe a text is in.
        accepted = sorted(accepted, key=lambda item: len(item.message.text))
        writes: list[asyncio.Task[_Stored]] = []
        model_ms = 0.0
        poisoned = 0
        try:
            for first in range(0, len(accepted), size):
                stripe = accepted[first : first + size]
                scoring = time.perf_counter()
                scored, refused = await self._score_isolating(stripe)
                stripe_ms = (time.perf_counter() - scoring) * 1000
                model_ms += stripe_ms
                if refused and len(refused) == len(stripe):
                    # Before anything is dead-lettered: is it these texts, or the model?
                    await self._check_model()
                poisoned += len(refused)
                previous = writes[-1] if writes else None
                rows = self._rows(scored, stripe_ms / len(stripe))
                writes.append(asyncio.create_task(self._store(rows, refused, previous)))
            outcomes = await asyncio.gather(*writes)
        except BaseException:
            # Nothing may still be writing when the batch is rewound: let every stripe's
            # work end (its failure is this one's, or a consequence of it) before raising.
            await asyncio.gather(*writes, return_exceptions=True)
            raise
        return BatchOutcome(
            len(records),
            len(accepted) - poisoned,
            sum(o.stored for o in outcomes),
            sum(o.flagged for o in outcomes),
            len(rejected) + poisoned + sum(o.refused for o in outcomes),
            sum(o.published for o in outcomes),
            {
                "model": model_ms,
                "write": sum(o.write_ms for o in outcomes),
                "publish": sum(o.publish_ms for o in outcomes),
                # Less than the sum of the three by what the stripes overlapped.
                "batch": (time.perf_counter() - started) * 1000,
            },
        )

    async def _store(
        self,
        rows: list[tuple[Accepted, dict[str, Any]]],
        poisoned: list[Rejected],
        previous: asyncio.Task[_Stored] | None,
    ) -> _Stored:
        """Write one stripe's rows, dead-letter what failed, publish its reviews."""
        if previous is not None:
            await previous  # one writer at a time (SQLite has one), stripes in order
        started = time.perf_counter()
        pending, refused = await self._write_isolating(rows)
        self._crash_point("rows", len(refused) < len(rows))
        written = time.perf_counter()
        await self.dead_letter(poisoned + refused)
        now = time.time()
        for item, _ in rows:
            self.metrics.end_to_end_seconds.observe(max(0.0, now - item.timestamp_ms / 1000))
        published = await self.publish_reviews(pending)
        return _Stored(
            stored=len(rows) - len(refused),
            flagged=sum(1 for _, row in rows if row["flagged"]),
            refused=len(refused),
            published=published,
            write_ms=(written - started) * 1000,
            publish_ms=(time.perf_counter() - written) * 1000,
        )

    async def process_one_by_one(self, records: Sequence[Any]) -> BatchOutcome:
        """The last resort for a batch that failed as a whole ``max_record_attempts`` times:
        each record alone; one that still fails (not transiently) is dead-lettered."""
        total = BatchOutcome(0, 0, 0, 0, 0, 0, {})
        for record in records:
            try:
                outcome = await self.process([record])
            except Exception as exc:
                if classify(exc) in (Fault.TRANSIENT, Fault.FATAL):
                    raise
                reason = (
                    f"failed {self.settings.service.max_record_attempts} times in its batch "
                    f"and again alone: {describe(exc)}"
                )
                await self.dead_letter([dead_letter(record, reason, error_type(exc))])
                outcome = BatchOutcome(1, 0, 0, 0, 1, 0, {})
            total = total.plus(outcome)
        return total

    def _crash_point(self, step: CrashStep, did_work: bool) -> None:
        """Test-only: die right after ``step`` (no clean-up, no offset commit) so the
        crash-point tests can check what a restart recovers."""
        if did_work and self.settings.service.crash_after == step:
            log.error("crash_after=%s: exiting hard (test-only setting)", step)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    async def dead_letter(self, rejected: list[Rejected]) -> None:
        """Publish dead letters (cut to fit the broker's request size) and wait for the acks."""
        if not rejected:
            return
        topic = self.settings.kafka.dead_letter_topic
        await asyncio.gather(*(self._publish_dead_letter(topic, r) for r in rejected))
        self._crash_point("dead_letters", True)
        for r in rejected:
            self.metrics.dead_lettered.labels(r.dead_letter.source_topic).inc()
            # The reason names the field or the error class; the payload is never logged.
            log.warning(
                "dead-lettered %s[%d]@%d: %s",
                r.dead_letter.source_topic,
                r.dead_letter.source_partition,
                r.dead_letter.source_offset,
                r.dead_letter.reason,
            )

    async def _publish_dead_letter(self, topic: str, rejected: Rejected) -> None:
        limit = self.settings.kafka.max_request_bytes
        value, key = fit_dead_letter(rejected, limit)
        headers = {"depdetect-reason": rejected.dead_letter.reason[:500]}
        original = len(base64.b64decode(rejected.dead_letter.payload_b64))
        if len(value) < len(encode(rejected.dead_letter)):
            headers["depdetect-truncated"] = "true"
            headers["depdetect-original-size"] = str(original)
        try:
            await self.publish(topic, value, key, headers)
        except MessageSizeTooLargeError:
            # The estimate of the framing was off: send what always fits, the reason and origin.
            value, key = fit_dead_letter(rejected, limit // 4)
            headers["depdetect-truncated"] = "true"
            headers["depdetect-original-size"] = str(original)
            await self.publish(topic, value, key, headers)

    async def _score_isolating(
        self, items: list[Accepted]
    ) -> tuple[list[tuple[Accepted, float, str | None]], list[Rejected]]:
        """Scores (and languages) for ``items``; records the model cannot score come back
        as dead letters."""

        async def score(part: list[Accepted]) -> list[tuple[Accepted, float, str | None]]:
            started = time.perf_counter()
            messages = [a.message for a in part]
            # onnxruntime releases the GIL: a thread keeps the event loop (heartbeats) alive.
            # Language detection (one-threaded Python) runs beside the model's run, in the
            # gaps its threads leave, rather than after it.
            results, languages = await asyncio.gather(
                asyncio.to_thread(self.runner.score, [m.text for m in messages]),
                asyncio.to_thread(languages_of, messages),
            )
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
            return [
                (item, r.score, lang)
                for item, r, lang in zip(part, results, languages, strict=True)
            ]

        return await self._isolating(
            items,
            score,
            record=lambda item: item.record,
            stage="model",
            refusal="the model could not score this text",
        )

    async def _isolating(
        self,
        items: list[T],
        attempt: Callable[[list[T]], Awaitable[list[R]]],
        *,
        record: Callable[[T], Any],
        stage: str,
        refusal: str,
    ) -> tuple[list[R], list[Rejected]]:
        """``attempt`` on ``items``; a failure that is neither transient nor fatal is bisected
        down to the items that cause it, which come back as dead letters saying ``refusal``."""

        async def bisect(part: list[T]) -> tuple[list[R], list[Rejected]]:
            if not part:
                return [], []
            try:
                return await attempt(part), []
            except Exception as exc:
                if classify(exc) in (Fault.TRANSIENT, Fault.FATAL):
                    raise
                if len(part) == 1:
                    self.metrics.isolated.labels(stage).inc()
                    reason = f"{refusal}: {describe(exc)}"
                    return [], [dead_letter(record(part[0]), reason, error_type(exc))]
                mid = len(part) // 2
                left_ok, left_bad = await bisect(part[:mid])
                right_ok, right_bad = await bisect(part[mid:])
                return left_ok + right_ok, left_bad + right_bad

        return await bisect(items)

    async def _check_model(self) -> None:
        """Every record failed to score: is it them, or the model? A known-good text decides."""
        try:
            await asyncio.to_thread(self.runner.score, ["a known good text"])
        except Exception as exc:
            raise FatalError(f"the model fails on a known-good text: {describe(exc)}") from exc

    def _rows(
        self, scored: list[tuple[Accepted, float, str | None]], per_text_ms: float
    ) -> list[tuple[Accepted, dict[str, Any]]]:
        if not scored:
            return []
        classified_at = utcnow()
        store_unflagged = self.settings.storage.store_unflagged
        rows = []
        for item, score, language in scored:
            msg = item.message
            flagged = score >= self.threshold
            # Texts in another language have no language; "other" keeps the label set bounded.
            self.metrics.classified.labels(language or "other").inc()
            if flagged:
                self.metrics.flagged.labels(language or "other").inc()
            elif store_unflagged is StoreUnflagged.NOTHING:
                continue
            row = {
                "message_id": msg.message_id,
                "score": score,
                "label": (Label.INDICATORS if flagged else Label.NO_INDICATORS).value,
                "flagged": flagged,
                "threshold": self.threshold,
                "model_version": self.runner.model_version,
                "language": language,
                "language_detected": msg.language is None,
                "source": msg.source,
                "author_ref": msg.author_ref,
                # Texts are sensitive: only flagged ones are kept, for the moderator.
                "text": msg.text if flagged else None,
                "submitted_at": msg.created_at,
                "classified_at": classified_at,
                "inference_ms": per_text_ms,
                "source_topic": item.topic,
                "source_partition": item.partition,
                "source_offset": item.offset,
                "review_status": ReviewStatus.PENDING.value if flagged else None,
            }
            rows.append((item, row))
        return rows

    async def _write_isolating(
        self, rows: list[tuple[Accepted, dict[str, Any]]]
    ) -> tuple[list[PendingReview], list[Rejected]]:
        """Write rows; rows the database refuses (a value, a constraint) come back as dead
        letters. Each bisected part is its own transaction; replays are idempotent."""

        async def write(part: list[tuple[Accepted, dict[str, Any]]]) -> list[PendingReview]:
            pending: list[PendingReview] = await self.retry(
                self.store.save_batch, [row for _, row in part]
            )
            return pending

        return await self._isolating(
            rows,
            write,
            record=lambda row: row[0].record,
            stage="database",
            refusal="the database refused the result row",
        )

    def review_event(self, row: PendingReview) -> ReviewRequest:
        return ReviewRequest(
            review_id=f"review-{row.message_id}",
            message_id=row.message_id,
            result_id=row.id,
            result_url=f"{self.settings.api.public_url.rstrip('/')}/results/{row.id}",
            text=row.text if self.settings.storage.review_includes_text else None,
            author_ref=row.author_ref,
            score=row.score,
            threshold=row.threshold,
            language=row.language,
            source=row.source,
            model_version=row.model_version,
            flagged_at=row.classified_at,
        )

    async def _publish_review(self, topic: str, row: PendingReview) -> None:
        event = self.review_event(row)
        key = (row.author_ref or row.message_id).encode("utf-8")
        headers = {"content-type": "application/json"}
        try:
            await self.publish(topic, encode(event), key, headers)
        except MessageSizeTooLargeError:
            # Too large with the text inline: the moderator fetches it by reference instead.
            headers["depdetect-text-omitted"] = "too-large"
            await self.publish(topic, encode(event.model_copy(update={"text": None})), key, headers)

    async def publish_reviews(self, pending: list[PendingReview]) -> int:
        """Publish review events, then mark them in the outbox; returns how many this call
        sent. Rows another call of this process is already publishing are not sent again:
        this one waits for that publication instead (a restarted service's outbox sweep
        and the replay of the batch it was killed in find the same unpublished rows)."""
        mine = [row for row in pending if row.id not in self._publishing]
        tasks = list({f for row in pending if (f := self._publishing.get(row.id))})
        if mine:
            task = asyncio.ensure_future(self._publish_and_mark(mine))
            for row in mine:
                self._publishing[row.id] = task
            task.add_done_callback(functools.partial(self._forget, [row.id for row in mine]))
            tasks.append(task)
        # Shielded: a caller that gives up (a sweep's timeout) leaves the publication and
        # its mark to finish for the others waiting on it.
        await asyncio.gather(*(asyncio.shield(t) for t in tasks))
        return len(mine)

    def _forget(self, ids: list[int], task: asyncio.Future[None]) -> None:
        for row_id in ids:
            self._publishing.pop(row_id, None)
        if not task.cancelled():
            task.exception()  # retrieved: every caller sees it through its own await

    async def _publish_and_mark(self, rows: list[PendingReview]) -> None:
        topic = self.settings.kafka.review_topic
        await asyncio.gather(*(self._publish_review(topic, row) for row in rows))
        self._crash_point("reviews", True)
        await self.retry(self.store.mark_published, [row.id for row in rows])
        self._crash_point("outbox", True)
        self.metrics.reviews_published.inc(len(rows))

    async def sweep_outbox(self, *, older_than_s: float = 0.0) -> int:
        """Publish reviews of flagged rows left unpublished by an earlier crash or failure.

        Database calls are made once, not retried: a failure ends this sweep (the caller
        logs it) and the next periodic sweep tries again.
        """
        total = 0
        while pending := await asyncio.to_thread(
            lambda: self.store.unpublished_reviews(500, older_than_s=older_than_s)
        ):
            total += await self.publish_reviews(pending)
        age = await asyncio.to_thread(self.store.oldest_unpublished_age_s)
        self.metrics.outbox_oldest_seconds.set(age)
        return total


def languages_of(messages: list[Any]) -> list[str | None]:
    return [resolve_language(m.text, m.language) for m in messages]
