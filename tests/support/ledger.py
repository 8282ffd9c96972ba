"""A per-message ledger for the fault tests: what was published, against what came out.

Every record a test publishes goes through :meth:`Ledger.publish`, which keeps where
the broker put it (topic, partition, offset) and what the test expects of it: a
result row (a valid text) or a dead letter (poison). :meth:`Ledger.check` then reads
everything the service produced and counts, per published record:

- result rows: exactly one per valid message id, written from that very record (its
  partition and offset), none for anything else;
- review events: at least one per flagged row, none for an unflagged one; repeats are
  counted (a Counter, never a set comparison that would hide them);
- dead letters: at least one per poison record, none for a valid one; repeats counted.

The result table is the count of processed records, so the ledger needs the service to
store a row for unflagged texts too (``store_unflagged=score``): in the default mode an
unflagged text leaves no trace at all, and a lost one would look like an unflagged one.
The write path is the same in both modes (``nothing`` only drops the unflagged rows
before the same ``save_batch``), so what the ledger proves in ``score`` mode holds there.

Topics are read up to their end offsets, not "until idle", so a late duplicate cannot
slip past the check.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy import create_engine, func, select

from depdetect.settings import Settings, StoreUnflagged
from schemas.messages import DeadLetter, ReviewRequest, SubmittedText, decode
from schemas.tables import ResultRow

#: Where a record sits in the log.
Position = tuple[str, int, int]


def texts(prefix: str, n: int) -> list[SubmittedText]:
    """``n`` valid messages with ids ``prefix-i``, multilingual, about half flagged by the
    tiny test bundle at its median threshold."""
    from tests.service.texts import stream

    return [
        SubmittedText(
            message_id=f"{prefix}-{i}",
            text=text,
            source="test",
            author_ref=f"author-{i % 17}",
            language=lang if i % 2 else None,
        )
        for i, (lang, text) in enumerate(stream(n))
    ]


@dataclass(frozen=True)
class Sent:
    position: Position
    message_id: str | None
    poison: bool


@dataclass
class LedgerReport:
    """What :meth:`Ledger.check` found; ``problems()`` lists every broken promise."""

    sent: int
    valid: int
    poison: int
    rows: int
    flagged: int
    reviews: int
    dead_letters: int
    lost: list[str] = field(default_factory=list)
    duplicated_rows: dict[str, int] = field(default_factory=dict)
    misplaced_rows: list[str] = field(default_factory=list)
    unexpected_rows: list[str] = field(default_factory=list)
    unreviewed_flags: list[str] = field(default_factory=list)
    spurious_reviews: list[str] = field(default_factory=list)
    duplicate_reviews: int = 0
    missing_dead_letters: list[Position] = field(default_factory=list)
    unexpected_dead_letters: list[Position] = field(default_factory=list)
    duplicate_dead_letters: int = 0
    unpublished_outbox: int = 0

    def problems(
        self, *, max_duplicate_reviews: int = 0, max_duplicate_dead_letters: int = 0
    ) -> list[str]:
        out = []
        checks: list[tuple[str, object]] = [
            ("lost (no result row)", self.lost),
            ("more than one row", self.duplicated_rows),
            ("row not from the published record", self.misplaced_rows),
            ("row for no published valid message", self.unexpected_rows),
            ("flag without a review event", self.unreviewed_flags),
            ("review event without a flag", self.spurious_reviews),
            ("poison without a dead letter", self.missing_dead_letters),
            ("dead letter for a valid record", self.unexpected_dead_letters),
        ]
        for what, items in checks:
            if items:
                sample = list(items.items() if isinstance(items, dict) else items)[:5]  # type: ignore[attr-defined]
                out.append(f"{what}: {len(items)} (e.g. {sample})")  # type: ignore[arg-type]
        if self.duplicate_reviews > max_duplicate_reviews:
            out.append(f"duplicate review events: {self.duplicate_reviews}")
        if self.duplicate_dead_letters > max_duplicate_dead_letters:
            out.append(f"duplicate dead letters: {self.duplicate_dead_letters}")
        if self.unpublished_outbox:
            out.append(f"flagged rows never marked published: {self.unpublished_outbox}")
        return out

    def summary(self) -> str:
        return (
            f"sent={self.sent} (valid {self.valid}, poison {self.poison}) rows={self.rows} "
            f"flagged={self.flagged} reviews={self.reviews} dead_letters={self.dead_letters} "
            f"lost={len(self.lost)} duplicated_rows={len(self.duplicated_rows)} "
            f"duplicate_reviews={self.duplicate_reviews} "
            f"duplicate_dead_letters={self.duplicate_dead_letters}"
        )


class Ledger:
    def __init__(self, settings: Settings, database_url: str | None = None) -> None:
        if settings.storage.store_unflagged is not StoreUnflagged.SCORE:
            raise ValueError(
                "the ledger counts result rows: run the service with store_unflagged=score"
            )
        self.settings = settings
        self.url = database_url or settings.database.url
        self.sent: dict[Position, Sent] = {}

    @property
    def valid_ids(self) -> list[str]:
        return [s.message_id for s in self.sent.values() if not s.poison and s.message_id]

    @property
    def poison_count(self) -> int:
        return sum(s.poison for s in self.sent.values())

    async def publish(
        self,
        messages: Iterable[SubmittedText | tuple[bytes, bytes | None]],
        *,
        topic: str | None = None,
        bootstrap: str | None = None,
    ) -> list[Sent]:
        """Publish valid messages (SubmittedText) and poison ((payload, key) pairs), in
        order, acks=all; record each one's position."""
        topic = topic or self.settings.kafka.input_topics[0]
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap or self.settings.kafka.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=60_000,
        )
        await producer.start()
        try:
            pending = []
            for item in messages:
                if isinstance(item, SubmittedText):
                    key = (item.author_ref or item.message_id).encode()
                    payload = item.model_dump_json().encode()
                    pending.append((await producer.send(topic, payload, key=key), item, False))
                else:
                    payload, key = item
                    pending.append((await producer.send(topic, payload, key=key), None, True))
            out = []
            for future, message, poison in pending:
                meta = await future
                sent = Sent(
                    (meta.topic, meta.partition, meta.offset),
                    message.message_id if message is not None else None,
                    poison,
                )
                self.sent[sent.position] = sent
                out.append(sent)
            return out
        finally:
            await producer.stop()

    # ------------------------------------------------------------------ reading

    def _rows(self) -> list[tuple[str, bool, str | None, int | None, int | None, bool]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [
                    tuple(r)  # type: ignore[misc]
                    for r in conn.execute(
                        select(
                            ResultRow.message_id,
                            ResultRow.flagged,
                            ResultRow.source_topic,
                            ResultRow.source_partition,
                            ResultRow.source_offset,
                            ResultRow.review_published_at.is_not(None),
                        )
                    )
                ]
        finally:
            engine.dispose()

    def row_count(self) -> int:
        """Result rows now (cheap; for waiting)."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(ResultRow)).scalar_one())
        finally:
            engine.dispose()

    async def wait_for_rows(self, at_least: int | None = None, *, timeout: float) -> int:
        """Poll until the result table holds ``at_least`` rows (default: every valid one)."""
        want = len(self.valid_ids) if at_least is None else at_least
        deadline = time.monotonic() + timeout
        while True:
            try:
                count = await asyncio.to_thread(self.row_count)
            except Exception:  # the database may be the fault under test
                count = -1
            if count >= want:
                return count
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} result rows after {timeout}s, expected {want}")
            await asyncio.sleep(0.5)

    async def settle(self, *, timeout: float = 180.0) -> LedgerReport:
        """Wait until every valid record has its row, every poison its dead letter and the
        outbox is drained (bounded), then :meth:`check`."""
        deadline = time.monotonic() + timeout
        while True:
            report = await self.check()
            done = not report.lost and not report.missing_dead_letters
            done = done and not report.unpublished_outbox and not report.unreviewed_flags
            if done or time.monotonic() > deadline:
                return report
            await asyncio.sleep(1.0)

    async def check(self, bootstrap: str | None = None) -> LedgerReport:
        kafka = self.settings.kafka
        bootstrap = bootstrap or kafka.bootstrap_servers
        rows = await asyncio.to_thread(self._rows)
        review_records, dead_records = await asyncio.gather(
            read_to_end(bootstrap, kafka.review_topic),
            read_to_end(bootstrap, kafka.dead_letter_topic),
        )
        valid = {s.message_id: s for s in self.sent.values() if not s.poison and s.message_id}
        report = LedgerReport(
            sent=len(self.sent),
            valid=len(valid),
            poison=self.poison_count,
            rows=len(rows),
            flagged=sum(1 for r in rows if r[1]),
            reviews=len(review_records),
            dead_letters=len(dead_records),
        )

        per_id = Counter(r[0] for r in rows)
        report.duplicated_rows = {m: n for m, n in per_id.items() if n > 1}
        report.lost = [m for m in valid if per_id[m] == 0]
        report.unexpected_rows = [m for m in per_id if m not in valid]
        report.misplaced_rows = [
            r[0] for r in rows if r[0] in valid and (r[2], r[3], r[4]) != valid[r[0]].position
        ]
        flagged = {r[0] for r in rows if r[1]}
        report.unpublished_outbox = sum(1 for r in rows if r[1] and not r[5])

        reviews = Counter(
            decode(ReviewRequest, rec.value or b"").message_id for rec in review_records
        )
        report.unreviewed_flags = sorted(flagged - set(reviews))
        report.spurious_reviews = sorted(set(reviews) - flagged)
        report.duplicate_reviews = sum(n - 1 for n in reviews.values())

        letters = Counter(
            (d.source_topic, d.source_partition, d.source_offset)
            for d in (decode(DeadLetter, rec.value or b"") for rec in dead_records)
        )
        poison = {p for p, s in self.sent.items() if s.poison}
        report.missing_dead_letters = sorted(poison - set(letters))
        report.unexpected_dead_letters = sorted(
            p for p in letters if p not in poison and p in self.sent
        )
        report.duplicate_dead_letters = sum(n - 1 for n in letters.values())
        return report

    async def assert_holds(
        self,
        *,
        timeout: float = 180.0,
        max_duplicate_reviews: int = 0,
        max_duplicate_dead_letters: int = 0,
    ) -> LedgerReport:
        """Settle, then fail with every broken promise named. Duplicates of review events
        and dead letters are allowed only up to the given bounds (at-least-once delivery
        may repeat them in a crash window; a test says how many it can explain)."""
        report = await self.settle(timeout=timeout)
        problems = report.problems(
            max_duplicate_reviews=max_duplicate_reviews,
            max_duplicate_dead_letters=max_duplicate_dead_letters,
        )
        assert not problems, f"ledger broken ({report.summary()}):\n  " + "\n  ".join(problems)
        return report


async def read_to_end(
    bootstrap: str, topic: str, *, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to the end offsets it has now (no group, no commit)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30_000,
    )
    await consumer.start()
    try:
        consumer._client.add_topic(topic)
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        end = await consumer.end_offsets(partitions)
        out: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += records
        return out
    finally:
        await consumer.stop()
