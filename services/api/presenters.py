"""Rows and query results turned into the public models (shared by routes and the CLI,
so that ``--json`` prints exactly what the API returns)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

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
    ReviewDayPublic,
    ReviewTimesPublic,
    ScoreBinPublic,
    ScoreDriftPublic,
)
from services.results_query.aggregates import (
    DecisionOutcome,
    FlagCount,
    ReviewTimes,
    ScoreDrift,
)
from services.results_query.privacy import is_small, shown
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


def flag_counts_public(
    rows: Sequence[FlagCount], *, has_denominator: bool, min_cell_size: int
) -> FlagCountsPublic:
    """``has_denominator``: unflagged rows are stored, so a rate means something.
    A group of fewer than ``min_cell_size`` stored results is suppressed."""
    data = []
    for row in rows:
        small = is_small(row.classified, min_cell_size)
        data.append(
            FlagCountPublic(
                **row.group,
                suppressed=small,
                classified=None if small else row.classified,
                flagged=None if small else row.flagged,
                flag_rate=(
                    row.flagged / row.classified
                    if has_denominator and row.classified and not small
                    else None
                ),
            )
        )
    return FlagCountsPublic(data=data, count=len(data))


def outcomes_public(rows: Sequence[DecisionOutcome], *, min_cell_size: int) -> OutcomesPublic:
    """A group of fewer than ``min_cell_size`` flags is suppressed."""
    data = []
    for row in rows:
        small = is_small(row.flagged, min_cell_size)
        figures: dict[str, Any] = {
            "flagged": row.flagged,
            "pending": row.pending,
            "decided": row.decided,
            "confirmed": row.confirmed,
            "not_indicators": row.not_indicators,
            "escalated": row.escalated,
            "precision": row.precision,
        }
        if small:
            figures = dict.fromkeys(figures)
        data.append(
            OutcomePublic(
                model_version=row.model_version, language=row.language, suppressed=small, **figures
            )
        )
    return OutcomesPublic(data=data, count=len(data))


def score_drift_public(drift: ScoreDrift, *, min_cell_size: int) -> ScoreDriftPublic:
    return ScoreDriftPublic(
        previous_since=drift.previous_since,
        current_since=drift.current_since,
        until=drift.until,
        min_cell_size=min_cell_size,
        bins=[
            ScoreBinPublic(
                low=b.low,
                high=b.high,
                current=shown(b.current, min_cell_size),
                previous=shown(b.previous, min_cell_size),
            )
            for b in drift.bins
        ],
    )


def review_times_public(
    times: ReviewTimes, *, min_cell_size: int, now: datetime
) -> ReviewTimesPublic:
    backlog_small = is_small(times.pending, min_cell_size)
    oldest_hours = (
        (now - times.oldest_pending_at).total_seconds() / 3600
        if times.oldest_pending_at is not None and not backlog_small
        else None
    )
    days = []
    for day in times.days:
        small = is_small(day.reviewed, min_cell_size)
        days.append(
            ReviewDayPublic(
                day=day.day,
                suppressed=small,
                reviewed=None if small else day.reviewed,
                median_hours=None if small else day.median_hours,
                p90_hours=None if small else day.p90_hours,
            )
        )
    return ReviewTimesPublic(
        suppressed=backlog_small,
        pending=None if backlog_small else times.pending,
        oldest_pending_hours=oldest_hours,
        min_cell_size=min_cell_size,
        days=days,
    )
