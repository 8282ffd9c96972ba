"""Rows and query results turned into the public models (shared by routes and the CLI,
so that ``--json`` prints exactly what the API returns)."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.messages import Decision
from schemas.tables import ResultRow
from services.api.models import (
    DecisionPublic,
    FlagCountPublic,
    FlagCountsPublic,
    OutcomePublic,
    OutcomesPublic,
    ResultDetailPublic,
    ResultPublic,
    ResultsPublic,
)
from services.results_query.aggregates import DecisionOutcome, FlagCount
from services.results_query.results import ResultPage


def results_public(page: ResultPage) -> ResultsPublic:
    data = [
        ResultPublic.model_validate(item.row).model_copy(update={"decision": item.decision})
        for item in page.items
    ]
    return ResultsPublic(data=data, count=page.count)


def result_detail_public(row: ResultRow) -> ResultDetailPublic:
    decisions = [DecisionPublic.model_validate(d) for d in row.decisions]
    summary = ResultPublic.model_validate(row)
    return ResultDetailPublic(
        **summary.model_dump(exclude={"decision"}),
        decision=Decision(decisions[-1].decision) if decisions else None,
        decisions=decisions,
    )


def flag_counts_public(rows: Sequence[FlagCount], *, has_denominator: bool) -> FlagCountsPublic:
    """``has_denominator``: unflagged rows are stored, so a rate means something."""
    data = [
        FlagCountPublic(
            **row.group,
            classified=row.classified,
            flagged=row.flagged,
            flag_rate=row.flagged / row.classified if has_denominator and row.classified else None,
        )
        for row in rows
    ]
    return FlagCountsPublic(data=data, count=len(data))


def outcomes_public(rows: Sequence[DecisionOutcome]) -> OutcomesPublic:
    data = [
        OutcomePublic(
            model_version=row.model_version,
            flagged=row.flagged,
            pending=row.pending,
            decided=row.decided,
            confirmed=row.confirmed,
            not_indicators=row.not_indicators,
            escalated=row.escalated,
            precision=row.precision,
        )
        for row in rows
    ]
    return OutcomesPublic(data=data, count=len(data))
