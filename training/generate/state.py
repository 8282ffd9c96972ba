"""The run's durable state: one SQLite file in the run directory.

Everything that costs money is written before the next step depends on it: the plan
(with each request's exact parameters), a submission marker before a batch is created,
the batch id right after, every raw result line and every parsed text. Results of one
batch are stored in one transaction, so a killed run re-reads that batch's results
(free) instead of leaving it half-counted, and never re-submits what was sent.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from training.generate.plan import PlannedRequest

DB_FILE = "state.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    ordinal INTEGER NOT NULL,
    language TEXT NOT NULL,
    state TEXT NOT NULL,
    category TEXT NOT NULL,
    bucket TEXT NOT NULL,
    min_words INTEGER NOT NULL,
    max_words INTEGER NOT NULL,
    n_texts INTEGER NOT NULL,
    persona TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS submissions (
    submission_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    n_requests INTEGER NOT NULL,
    status TEXT NOT NULL,
    batch_id TEXT
);
CREATE TABLE IF NOT EXISTS submission_items (
    submission_id INTEGER NOT NULL REFERENCES submissions(submission_id),
    custom_id TEXT NOT NULL,
    request_id TEXT NOT NULL REFERENCES requests(request_id),
    attempt INTEGER NOT NULL,
    PRIMARY KEY (submission_id, custom_id)
);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    submission_id INTEGER NOT NULL REFERENCES submissions(submission_id),
    n_requests INTEGER NOT NULL,
    processing_status TEXT NOT NULL,
    results_done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS attempts (
    custom_id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES requests(request_id),
    attempt INTEGER NOT NULL,
    batch_id TEXT NOT NULL REFERENCES batches(batch_id),
    result_type TEXT,
    outcome TEXT,
    error TEXT,
    raw TEXT,
    model TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER
);
CREATE TABLE IF NOT EXISTS texts (
    text_id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL REFERENCES requests(request_id),
    custom_id TEXT NOT NULL REFERENCES attempts(custom_id),
    batch_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    word_count INTEGER NOT NULL,
    detected_language TEXT,
    accepted INTEGER NOT NULL,
    reason TEXT,
    detail TEXT,
    dedup_key TEXT NOT NULL,
    model TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS texts_unique_accepted ON texts(dedup_key) WHERE accepted = 1;
CREATE INDEX IF NOT EXISTS attempts_by_batch ON attempts(batch_id);
"""


class RequestStatus(StrEnum):
    PENDING = "pending"
    """Needs (re)submission."""
    SUBMITTING = "submitting"
    """In a batch creation whose outcome is not yet recorded."""
    IN_FLIGHT = "in_flight"
    """In a created batch whose results are not yet processed."""
    DONE = "done"
    FAILED = "failed"


class SubmissionStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class StoredRequest:
    request_id: str
    language: str
    state: str
    category: str
    bucket: str
    min_words: int
    max_words: int
    n_texts: int
    persona: dict[str, Any]
    params: dict[str, Any]
    status: str
    attempts: int

    def custom_id(self, attempt: int) -> str:
        return f"{self.request_id}-a{attempt}"


@dataclass(frozen=True)
class OpenSubmission:
    submission_id: int
    started_at: float
    n_requests: int


class RunStore:
    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / DB_FILE
        # Autocommit mode; transactions are explicit (see `transaction`).
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- meta and plan -----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def has_plan(self) -> bool:
        return self._db.execute("SELECT 1 FROM requests LIMIT 1").fetchone() is not None

    def save_plan(self, plan: list[PlannedRequest], meta: dict[str, str]) -> None:
        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items()
            )
            self._db.executemany(
                "INSERT INTO requests (request_id, ordinal, language, state, category, bucket,"
                " min_words, max_words, n_texts, persona, params, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.request_id,
                        ordinal,
                        r.cell.language,
                        r.cell.state,
                        r.cell.category,
                        r.cell.bucket.label,
                        r.cell.bucket.min_words,
                        r.cell.bucket.max_words,
                        r.n_texts,
                        json.dumps(r.persona.to_dict(), ensure_ascii=False),
                        json.dumps(r.params, ensure_ascii=False),
                        RequestStatus.PENDING.value,
                    )
                    for ordinal, r in enumerate(plan)
                ],
            )

    def requests(self, status: RequestStatus | None = None) -> list[StoredRequest]:
        sql = "SELECT * FROM requests"
        args: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status.value,)
        rows = self._db.execute(sql + " ORDER BY ordinal", args).fetchall()
        return [_stored_request(row) for row in rows]

    def request(self, request_id: str) -> StoredRequest:
        row = self._db.execute(
            "SELECT * FROM requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        if row is None:
            raise KeyError(request_id)
        return _stored_request(row)

    def status_counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) AS n FROM requests GROUP BY status")
        return {str(row["status"]): int(row["n"]) for row in rows}

    def revive_failed(self, max_attempts: int) -> int:
        """Failed requests become pending again when a higher retry limit allows it."""
        cursor = self._db.execute(
            "UPDATE requests SET status = ? WHERE status = ? AND attempts < ?",
            (RequestStatus.PENDING.value, RequestStatus.FAILED.value, max_attempts),
        )
        return cursor.rowcount

    # -- submissions -------------------------------------------------------------------

    def begin_submission(self, items: list[tuple[StoredRequest, int]]) -> int:
        """Record the intent to create a batch before calling the API."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO submissions (started_at, n_requests, status) VALUES (?, ?, ?)",
                (time.time(), len(items), SubmissionStatus.PENDING.value),
            )
            submission_id = int(cursor.lastrowid or 0)
            self._db.executemany(
                "INSERT INTO submission_items (submission_id, custom_id, request_id, attempt)"
                " VALUES (?, ?, ?, ?)",
                [
                    (submission_id, request.custom_id(attempt), request.request_id, attempt)
                    for request, attempt in items
                ],
            )
            self._db.executemany(
                "UPDATE requests SET status = ? WHERE request_id = ?",
                [(RequestStatus.SUBMITTING.value, request.request_id) for request, _ in items],
            )
        return submission_id

    def confirm_submission(self, submission_id: int, batch_id: str, processing_status: str) -> None:
        with self.transaction():
            n = self._db.execute(
                "SELECT n_requests FROM submissions WHERE submission_id = ?", (submission_id,)
            ).fetchone()["n_requests"]
            self._db.execute(
                "UPDATE submissions SET status = ?, batch_id = ? WHERE submission_id = ?",
                (SubmissionStatus.CONFIRMED.value, batch_id, submission_id),
            )
            self._db.execute(
                "INSERT INTO batches (batch_id, submission_id, n_requests, processing_status)"
                " VALUES (?, ?, ?, ?)",
                (batch_id, submission_id, n, processing_status),
            )
            self._db.execute(
                "INSERT INTO attempts (custom_id, request_id, attempt, batch_id)"
                " SELECT custom_id, request_id, attempt, ? FROM submission_items"
                " WHERE submission_id = ?",
                (batch_id, submission_id),
            )
            self._db.execute(
                "UPDATE requests SET status = ?, attempts = ("
                "  SELECT attempt FROM submission_items i"
                "  WHERE i.submission_id = ? AND i.request_id = requests.request_id)"
                " WHERE request_id IN ("
                "  SELECT request_id FROM submission_items WHERE submission_id = ?)",
                (RequestStatus.IN_FLIGHT.value, submission_id, submission_id),
            )

    def abandon_submission(self, submission_id: int) -> None:
        """The batch was certainly not created: its requests go back to pending."""
        with self.transaction():
            self._db.execute(
                "UPDATE submissions SET status = ? WHERE submission_id = ?",
                (SubmissionStatus.ABANDONED.value, submission_id),
            )
            self._db.execute(
                "UPDATE requests SET status = ? WHERE request_id IN ("
                " SELECT request_id FROM submission_items WHERE submission_id = ?)",
                (RequestStatus.PENDING.value, submission_id),
            )

    def open_submissions(self) -> list[OpenSubmission]:
        rows = self._db.execute(
            "SELECT submission_id, started_at, n_requests FROM submissions WHERE status = ?",
            (SubmissionStatus.PENDING.value,),
        ).fetchall()
        return [OpenSubmission(row[0], row[1], row[2]) for row in rows]

    def known_batch_ids(self) -> set[str]:
        return {str(row[0]) for row in self._db.execute("SELECT batch_id FROM batches")}

    # -- batches and results -----------------------------------------------------------

    def open_batches(self) -> list[str]:
        rows = self._db.execute(
            "SELECT batch_id FROM batches WHERE results_done = 0 ORDER BY submission_id"
        )
        return [str(row[0]) for row in rows]

    def set_batch_status(self, batch_id: str, processing_status: str) -> None:
        self._db.execute(
            "UPDATE batches SET processing_status = ? WHERE batch_id = ?",
            (processing_status, batch_id),
        )

    def finish_batch(self, batch_id: str) -> None:
        self._db.execute("UPDATE batches SET results_done = 1 WHERE batch_id = ?", (batch_id,))

    def batch_attempts(self, batch_id: str) -> dict[str, tuple[str, int]]:
        """custom_id -> (request_id, attempt) for every request sent in the batch."""
        rows = self._db.execute(
            "SELECT custom_id, request_id, attempt FROM attempts WHERE batch_id = ?", (batch_id,)
        )
        return {str(row[0]): (str(row[1]), int(row[2])) for row in rows}

    def record_result(
        self,
        custom_id: str,
        *,
        result_type: str,
        outcome: str,
        error: str | None,
        raw: str | None,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        self._db.execute(
            "UPDATE attempts SET result_type = ?, outcome = ?, error = ?, raw = ?, model = ?,"
            " input_tokens = ?, output_tokens = ? WHERE custom_id = ?",
            (result_type, outcome, error, raw, model, input_tokens, output_tokens, custom_id),
        )

    def is_duplicate(self, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM texts WHERE dedup_key = ? AND accepted = 1 LIMIT 1", (key,)
        ).fetchone()
        return row is not None

    def add_text(
        self,
        *,
        request_id: str,
        custom_id: str,
        batch_id: str,
        position: int,
        text: str,
        word_count: int,
        detected_language: str | None,
        reason: str | None,
        detail: str | None,
        dedup_key: str,
        model: str | None,
    ) -> None:
        self._db.execute(
            "INSERT INTO texts (request_id, custom_id, batch_id, position, text, word_count,"
            " detected_language, accepted, reason, detail, dedup_key, model)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                custom_id,
                batch_id,
                position,
                text,
                word_count,
                detected_language,
                int(reason is None),
                reason,
                detail,
                dedup_key,
                model,
            ),
        )

    def set_request_status(
        self, request_id: str, status: RequestStatus, error: str | None = None
    ) -> None:
        self._db.execute(
            "UPDATE requests SET status = ?, last_error = ? WHERE request_id = ?",
            (status.value, error, request_id),
        )

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read-only access for reports and exports."""
        return self._db.execute(sql, args).fetchall()


def _stored_request(row: sqlite3.Row) -> StoredRequest:
    return StoredRequest(
        request_id=row["request_id"],
        language=row["language"],
        state=row["state"],
        category=row["category"],
        bucket=row["bucket"],
        min_words=row["min_words"],
        max_words=row["max_words"],
        n_texts=row["n_texts"],
        persona=json.loads(row["persona"]),
        params=json.loads(row["params"]),
        status=row["status"],
        attempts=row["attempts"],
    )
