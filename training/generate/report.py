"""What a run produced: the per-cell report, the output table and the rejects file."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.table import Table

from training.generate.plan import Estimate, PlannedRequest
from training.generate.state import RequestStatus, RunStore
from training.generate.validation import Reason

OutputFormat = Literal["csv", "parquet"]
CellKey = tuple[str, str, str, str]
DIMENSIONS = ("language", "state", "category", "bucket")

#: Columns of the output table, in order; the preparation step reads these.
OUTPUT_COLUMNS = (
    "text",
    "label",
    "state",
    "language",
    "category",
    "bucket",
    "word_count",
    "age_group",
    "education",
    "writing_style",
    "context",
    "healthy_focus",
    "custom_id",
    "batch_id",
    "model",
    "request_id",
)
REJECT_COLUMNS = (
    "kind",
    "reason",
    "detail",
    "text",
    "word_count",
    "detected_language",
    "state",
    "language",
    "category",
    "bucket",
    "custom_id",
    "batch_id",
    "request_id",
)


@dataclass
class CellCounts:
    language: str
    state: str
    category: str
    bucket: str
    requests: int = 0
    requested_texts: int = 0
    #: Submissions, first attempts and retries together.
    submitted: int = 0
    retried: int = 0
    #: Results of type "succeeded" (a model answer arrived).
    received: int = 0
    #: Results that did not yield texts: errored, expired, canceled, missing, unparseable…
    failed_results: int = 0
    parsed: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Reason})
    #: Requests given up on after the retry limit.
    failed: int = 0
    #: Requests not finished yet (the run was stopped or is still going).
    unfinished: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def add(self, other: CellCounts) -> None:
        for name in (
            "requests",
            "requested_texts",
            "submitted",
            "retried",
            "received",
            "failed_results",
            "parsed",
            "accepted",
            "failed",
            "unfinished",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def flat(self) -> dict[str, object]:
        row = asdict(self)
        rejected = row.pop("rejected")
        row["rejected"] = self.rejected_total
        row.update({f"rejected_{reason}": n for reason, n in rejected.items()})
        return row


def cell_counts(store: RunStore) -> list[CellCounts]:
    cells: dict[CellKey, CellCounts] = {}

    def cell(row: object) -> CellCounts:
        key = (row["language"], row["state"], row["category"], row["bucket"])  # type: ignore[index]
        if key not in cells:
            cells[key] = CellCounts(*key)
        return cells[key]

    unfinished = {RequestStatus.PENDING, RequestStatus.SUBMITTING, RequestStatus.IN_FLIGHT}
    for row in store.query("SELECT * FROM requests ORDER BY ordinal"):
        counts = cell(row)
        counts.requests += 1
        counts.requested_texts += row["n_texts"]
        counts.failed += row["status"] == RequestStatus.FAILED
        counts.unfinished += row["status"] in unfinished
    for row in store.query(
        "SELECT r.language, r.state, r.category, r.bucket, a.attempt, a.result_type, a.outcome"
        " FROM attempts a JOIN requests r USING (request_id)"
    ):
        counts = cell(row)
        counts.submitted += 1
        counts.retried += row["attempt"] > 1
        counts.received += row["result_type"] == "succeeded"
        counts.failed_results += row["outcome"] is not None and row["outcome"] != "parsed"
    for row in store.query(
        "SELECT r.language, r.state, r.category, r.bucket, t.accepted, t.reason, COUNT(*) AS n"
        " FROM texts t JOIN requests r USING (request_id)"
        " GROUP BY r.language, r.state, r.category, r.bucket, t.accepted, t.reason"
    ):
        counts = cell(row)
        counts.parsed += row["n"]
        if row["accepted"]:
            counts.accepted += row["n"]
        else:
            counts.rejected[row["reason"]] = counts.rejected.get(row["reason"], 0) + row["n"]
    return list(cells.values())


def group_counts(cells: list[CellCounts], by: tuple[str, ...]) -> list[CellCounts]:
    """Sum cells over the dimensions not in `by` (empty `by`: one total row)."""
    groups: dict[tuple[str, ...], CellCounts] = {}
    for counts in cells:
        key = tuple(str(getattr(counts, dim)) if dim in by else "*" for dim in DIMENSIONS)
        if key not in groups:
            groups[key] = CellCounts(key[0], key[1], key[2], key[3])
        groups[key].add(counts)
    return list(groups.values())


def write_report(store: RunStore, run_dir: Path) -> list[CellCounts]:
    """report.json (totals and cells) and report_cells.csv (one row per cell)."""
    cells = cell_counts(store)
    total = group_counts(cells, ())[0] if cells else None
    attempts_by_outcome = {
        str(row["outcome"] or "awaiting"): int(row["n"])
        for row in store.query("SELECT outcome, COUNT(*) AS n FROM attempts GROUP BY outcome")
    }
    payload = {
        "requests_by_status": store.status_counts(),
        "attempts_by_outcome": attempts_by_outcome,
        "total": total.flat() if total else {},
        "cells": [counts.flat() for counts in cells],
    }
    (run_dir / "report.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    rows = [counts.flat() for counts in cells]
    if rows:
        with (run_dir / "report_cells.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return cells


def output_rows(store: RunStore) -> list[dict[str, object]]:
    rows = []
    for row in store.query(
        "SELECT t.text, t.word_count, t.custom_id, t.batch_id, t.model, r.request_id,"
        " r.state, r.language, r.category, r.bucket, r.persona"
        " FROM texts t JOIN requests r USING (request_id)"
        " WHERE t.accepted = 1 ORDER BY r.ordinal, t.custom_id, t.position"
    ):
        persona = json.loads(row["persona"])
        rows.append(
            {
                "text": row["text"],
                "label": int(row["state"] == "Unhealthy"),
                "state": row["state"],
                "language": row["language"],
                "category": row["category"],
                "bucket": row["bucket"],
                "word_count": row["word_count"],
                "age_group": persona["age_group"],
                "education": persona["education"],
                "writing_style": persona["writing_style"],
                "context": persona["context"],
                "healthy_focus": persona.get("healthy_focus") or "",
                "custom_id": row["custom_id"],
                "batch_id": row["batch_id"],
                "model": row["model"],
                "request_id": row["request_id"],
            }
        )
    return rows


def reject_rows(store: RunStore) -> list[dict[str, object]]:
    """Rejected texts, and answers that gave no texts at all (kept raw for inspection)."""
    rows: list[dict[str, object]] = []
    for row in store.query(
        "SELECT t.*, r.state, r.language, r.category, r.bucket"
        " FROM texts t JOIN requests r USING (request_id)"
        " WHERE t.accepted = 0 ORDER BY r.ordinal, t.custom_id, t.position"
    ):
        rows.append({"kind": "text", **{col: row[col] for col in REJECT_COLUMNS[1:]}})
    for row in store.query(
        "SELECT a.*, r.state, r.language, r.category, r.bucket"
        " FROM attempts a JOIN requests r USING (request_id)"
        " WHERE a.outcome IS NOT NULL AND a.outcome != 'parsed' ORDER BY r.ordinal, a.attempt"
    ):
        rows.append(
            {
                "kind": "response",
                "reason": row["outcome"],
                "detail": row["error"],
                "text": row["raw"] or "",
                "word_count": "",
                "detected_language": "",
                **{col: row[col] for col in REJECT_COLUMNS[6:]},
            }
        )
    return rows


def export_outputs(
    store: RunStore, run_dir: Path, fmt: OutputFormat = "csv"
) -> tuple[Path, Path, int, int]:
    """Write the output table and the rejects file; returns paths and row counts."""
    rows = output_rows(store)
    if fmt == "parquet":
        # pandas and pyarrow come with the training extra; CSV needs neither.
        import pandas as pd

        output = run_dir / "texts.parquet"
        pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS)).to_parquet(output, index=False)
    else:
        output = run_dir / "texts.csv"
        _write_csv(output, OUTPUT_COLUMNS, rows)
    rejects = reject_rows(store)
    rejects_path = run_dir / "rejects.csv"
    _write_csv(rejects_path, REJECT_COLUMNS, rejects)
    return output, rejects_path, len(rows), len(rejects)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def render_counts(console: Console, rows: list[CellCounts], title: str) -> None:
    table = Table(title=title)
    for name in (
        *DIMENSIONS,
        "requests",
        "texts asked",
        "retried",
        "received",
        "failed res.",
        "parsed",
        "accepted",
        "rejected",
        "failed req.",
        "unfinished",
    ):
        table.add_column(name, justify="left" if name in DIMENSIONS else "right")
    for c in rows:
        reasons = ", ".join(f"{r} {n}" for r, n in c.rejected.items() if n)
        table.add_row(
            c.language,
            c.state,
            c.category,
            c.bucket,
            str(c.requests),
            str(c.requested_texts),
            str(c.retried),
            str(c.received),
            str(c.failed_results),
            str(c.parsed),
            str(c.accepted),
            f"{c.rejected_total}" + (f" ({reasons})" if reasons else ""),
            str(c.failed),
            str(c.unfinished),
        )
    console.print(table)


def render_plan(console: Console, plan: list[PlannedRequest], estimate: Estimate) -> None:
    """The dry run: texts and requests per language × state and bucket, then the estimate."""
    by_group: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )
    buckets: list[str] = []
    for request in plan:
        label = request.cell.bucket.label
        if label not in buckets:
            buckets.append(label)
        entry = by_group[(request.cell.language, request.cell.state)][label]
        entry[0] += request.n_texts
        entry[1] += 1
    table = Table(title="Generation plan: texts (requests) per language × state × bucket")
    table.add_column("language")
    table.add_column("state")
    for label in buckets:
        table.add_column(f"{label} words", justify="right")
    table.add_column("total", justify="right")
    for (language, state), cells in by_group.items():
        texts = sum(v[0] for v in cells.values())
        requests = sum(v[1] for v in cells.values())
        table.add_row(
            language,
            state,
            *(f"{cells[label][0]} ({cells[label][1]})" for label in buckets),
            f"{texts} ({requests})",
        )
    console.print(table)
    categories = sorted({request.cell.category for request in plan})
    console.print(f"categories ({len(categories)}, spread evenly): {', '.join(categories)}")
    console.print(
        f"cells: {estimate.cells:,}  requests: {estimate.requests:,}  texts: {estimate.texts:,}"
    )
    console.print(
        f"estimated tokens: input {estimate.input_tokens:,}, output {estimate.output_tokens:,} "
        f"(ceiling at max_tokens: {estimate.output_tokens_ceiling:,})"
    )
    console.print(
        f"estimated cost with batch pricing: US$ {estimate.cost_usd:,.2f} "
        f"(ceiling US$ {estimate.cost_ceiling_usd:,.2f}); retries of failed requests come on top"
    )
