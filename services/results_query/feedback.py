"""Moderator-labelled texts as training rows, in the table format of ``training/prepare``.

The format is the one of ``training/sample_data/sample.csv``: pipe-separated with a
header, quoted like pandas' ``to_csv(sep="|")`` so that ``read_csv(sep="|")`` reads
texts that contain pipes, quotes or line breaks back unchanged.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.messages import Decision
from schemas.tables import ResultRow
from services.results_query.filters import ResultScope
from services.results_query.latest import latest_decisions

COLUMNS = ("text", "label", "language", "source", "origin")
#: ``origin`` of every exported row, so that training can weigh this input on its own.
ORIGIN = "moderator_feedback"
#: Escalated results have no label yet: a person above the moderator decides.
LABELS: dict[str, int] = {Decision.CONFIRMED.value: 1, Decision.NOT_INDICATORS.value: 0}


@dataclass(frozen=True, kw_only=True)
class FeedbackRow:
    text: str
    label: int
    language: str | None
    source: str
    origin: str = ORIGIN


def feedback_rows(
    *, session: Session, scope: ResultScope, batch_size: int = 1000
) -> Iterator[FeedbackRow]:
    """Decided rows with a text, labelled by their latest decision, oldest first."""
    latest = latest_decisions()
    stmt = scope.apply(
        select(ResultRow.text, latest.c.decision, ResultRow.language, ResultRow.source)
        .join(latest, latest.c.result_id == ResultRow.id)
        .where(latest.c.decision.in_(list(LABELS)), ResultRow.text.is_not(None))
    ).order_by(ResultRow.id)
    for text, decision, language, source in session.execute(
        stmt.execution_options(yield_per=batch_size)
    ):
        yield FeedbackRow(text=text, label=LABELS[decision], language=language, source=source)


def write_feedback_table(rows: Iterable[FeedbackRow], stream: TextIO) -> int:
    """Write the header and the rows; returns how many rows were written."""
    writer = csv.writer(stream, delimiter="|", quotechar='"', lineterminator="\n")
    writer.writerow(COLUMNS)
    written = 0
    for row in rows:
        writer.writerow([row.text, row.label, row.language or "", row.source, row.origin])
        written += 1
    return written
