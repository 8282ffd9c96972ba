"""The work on one consumed batch: validate, dead-letter, score, write, emit reviews.

Order matters for the delivery guarantee. Dead letters are confirmed by the broker,
results are committed to the database, review events are confirmed by the broker and
then marked in the outbox — and only after all of that does the caller commit offsets.
A crash anywhere before the commit replays the batch; idempotent writes and the
outbox make the replay harmless.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from depdetect.settings import Settings, StoreUnflagged
from schemas.messages import Label, ReviewRequest, encode, utcnow
from schemas.tables import ReviewStatus
from services.classifier.metrics import ServiceMetrics
from services.classifier.records import Accepted, Rejected, sort_records
from services.inference.language import detect_language
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

    async def process(self, records: Sequence[Any]) -> BatchOutcome:
        for record in records:
            self.metrics.consumed.labels(record.topic).inc()
        self.metrics.batch_size.observe(len(records))
        accepted, rejected = sort_records(
            records, max_text_chars=self.settings.contract.max_text_chars
        )
        await self._dead_letter(rejected)
        self._crash_point("dead_letters", bool(rejected))
        started = time.perf_counter()
        rows = await self._classify(accepted)
        classified = time.perf_counter()
        pending = await self.retry(self.store.save_batch, rows)
        self._crash_point("rows", bool(rows))
        written = time.perf_counter()
        now = time.time()
        for item in accepted:
            self.metrics.end_to_end_seconds.observe(max(0.0, now - item.timestamp_ms / 1000))
        published = await self.publish_reviews(pending)
        done = time.perf_counter()
        return BatchOutcome(
            len(records),
            len(accepted),
            len(rows),
            sum(1 for r in rows if r["flagged"]),
            len(rejected),
            published,
            {
                "model": (classified - started) * 1000,
                "write": (written - classified) * 1000,
                "publish": (done - written) * 1000,
            },
        )

    def _crash_point(self, step: CrashStep, did_work: bool) -> None:
        """Test-only: die right after ``step`` (no clean-up, no offset commit) so the
        crash-point tests can check what a restart recovers."""
        if did_work and self.settings.service.crash_after == step:
            log.error("crash_after=%s: exiting hard (test-only setting)", step)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    async def _dead_letter(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        topic = self.settings.kafka.dead_letter_topic
        await asyncio.gather(
            *(
                self.publish(
                    topic,
                    encode(r.dead_letter),
                    r.key,
                    {"depdetect-reason": r.dead_letter.reason[:500]},
                )
                for r in rejected
            )
        )
        for r in rejected:
            self.metrics.dead_lettered.labels(r.dead_letter.source_topic).inc()
            # The reason names the field; the payload (the text) is never logged.
            log.warning(
                "dead-lettered %s[%d]@%d: %s",
                r.dead_letter.source_topic,
                r.dead_letter.source_partition,
                r.dead_letter.source_offset,
                r.dead_letter.reason,
            )

    async def _classify(self, accepted: list[Accepted]) -> list[dict[str, Any]]:
        if not accepted:
            return []
        started = time.perf_counter()
        # onnxruntime releases the GIL: a thread keeps the event loop (heartbeats) alive.
        scored = await asyncio.to_thread(self.runner.score, [a.message.text for a in accepted])
        elapsed = time.perf_counter() - started
        self.metrics.inference_seconds.observe(elapsed)
        per_text_ms = elapsed * 1000 / len(accepted)
        classified_at = utcnow()
        store_unflagged = self.settings.storage.store_unflagged
        rows = []
        for item, result in zip(accepted, scored, strict=True):
            msg = item.message
            flagged = result.score >= self.threshold
            language = msg.language or detect_language(msg.text)
            self.metrics.classified.labels(language).inc()
            if flagged:
                self.metrics.flagged.labels(language).inc()
            elif store_unflagged is StoreUnflagged.NOTHING:
                continue
            rows.append(
                {
                    "message_id": msg.message_id,
                    "score": result.score,
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
            )
        return rows

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

    async def publish_reviews(self, pending: list[PendingReview]) -> int:
        """Publish review events, then mark them in the outbox."""
        if not pending:
            return 0
        topic = self.settings.kafka.review_topic
        await asyncio.gather(
            *(
                self.publish(
                    topic,
                    encode(self.review_event(row)),
                    (row.author_ref or row.message_id).encode("utf-8"),
                    {"content-type": "application/json"},
                )
                for row in pending
            )
        )
        self._crash_point("reviews", True)
        await self.retry(self.store.mark_published, [row.id for row in pending])
        self._crash_point("outbox", True)
        self.metrics.reviews_published.inc(len(pending))
        return len(pending)

    async def sweep_outbox(self) -> int:
        """Publish reviews of flagged rows left unpublished by an earlier crash."""
        total = 0
        while pending := await self.retry(self.store.unpublished_reviews, 500):
            total += await self.publish_reviews(pending)
        return total
