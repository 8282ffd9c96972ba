"""Figures for analysts: counts, never texts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from schemas.messages import Decision
from schemas.tables import DecisionRow, ResultRow, ReviewStatus
from services.results_query.filters import ResultScope
from services.results_query.latest import latest_decisions


class Dimension(StrEnum):
    """What flag counts can be grouped by."""

    DAY = "day"
    LANGUAGE = "language"
    SOURCE = "source"
    MODEL_VERSION = "model_version"


@dataclass(frozen=True, kw_only=True)
class FlagCount:
    #: One entry per requested dimension; a day is an ISO date (UTC).
    group: dict[str, str | None]
    #: Stored rows: flagged rows plus unflagged ones when the service keeps them.
    classified: int
    flagged: int


@dataclass(frozen=True, kw_only=True)
class DecisionOutcome:
    model_version: str
    #: Set when the outcomes are grouped by language as well.
    language: str | None = None
    flagged: int
    pending: int
    confirmed: int
    not_indicators: int
    escalated: int

    @property
    def decided(self) -> int:
        return self.confirmed + self.not_indicators + self.escalated

    @property
    def precision(self) -> float | None:
        """Share of judged flags that moderators confirmed (escalations are not judged)."""
        judged = self.confirmed + self.not_indicators
        return self.confirmed / judged if judged else None


def _utc_day(dialect: str) -> ColumnElement[Any]:
    # SQLite stores UTC wall-clock strings; PostgreSQL needs the zone named, since the
    # session time zone need not be UTC.
    if dialect == "sqlite":
        return func.date(ResultRow.classified_at)
    return func.date(func.timezone("UTC", ResultRow.classified_at))


def _column(dimension: Dimension, dialect: str) -> ColumnElement[Any]:
    if dimension is Dimension.DAY:
        return _utc_day(dialect)
    return getattr(ResultRow, dimension.value)  # type: ignore[no-any-return]


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def flag_counts(*, session: Session, scope: ResultScope, by: list[Dimension]) -> list[FlagCount]:
    dimensions = list(dict.fromkeys(by)) or [Dimension.DAY]
    dialect = session.get_bind().dialect.name
    columns = [_column(d, dialect).label(d.value) for d in dimensions]
    stmt = scope.apply(
        select(
            *columns,
            func.count().label("classified"),
            func.coalesce(func.sum(cast(ResultRow.flagged, Integer)), 0).label("flagged"),
        ).select_from(ResultRow)
    )
    stmt = stmt.group_by(*columns).order_by(*columns)
    return [
        FlagCount(
            group={d.value: _as_text(getattr(r, d.value)) for d in dimensions},
            classified=int(r.classified),
            flagged=int(r.flagged),
        )
        for r in session.execute(stmt)
    ]


def _tally(latest_decision: Any, value: Decision) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((latest_decision == value.value, 1), else_=0)), 0)


def decision_outcomes(
    *, session: Session, scope: ResultScope, by_language: bool = False
) -> list[DecisionOutcome]:
    """Per model version (and language): how the latest decisions on its flags came out."""
    latest = latest_decisions()
    groups: list[Any] = [ResultRow.model_version]
    if by_language:
        groups.append(ResultRow.language)
    stmt = scope.apply(
        select(
            *groups,
            func.count().label("flagged"),
            func.coalesce(func.sum(case((latest.c.decision.is_(None), 1), else_=0)), 0).label(
                "pending"
            ),
            _tally(latest.c.decision, Decision.CONFIRMED).label("confirmed"),
            _tally(latest.c.decision, Decision.NOT_INDICATORS).label("not_indicators"),
            _tally(latest.c.decision, Decision.ESCALATED).label("escalated"),
        )
        .select_from(ResultRow)
        .outerjoin(latest, latest.c.result_id == ResultRow.id)
        .where(ResultRow.flagged.is_(True))
    )
    stmt = stmt.group_by(*groups).order_by(*groups)
    return [
        DecisionOutcome(
            model_version=r.model_version,
            language=r.language if by_language else None,
            flagged=int(r.flagged),
            pending=int(r.pending),
            confirmed=int(r.confirmed),
            not_indicators=int(r.not_indicators),
            escalated=int(r.escalated),
        )
        for r in session.execute(stmt)
    ]


@dataclass(frozen=True, kw_only=True)
class ScoreBin:
    #: Scores in [low, high); the last bin includes 1.0.
    low: float
    high: float
    current: int
    previous: int


@dataclass(frozen=True, kw_only=True)
class ScoreDrift:
    """Score histograms of two adjacent windows of equal length: a shifted shape is drift."""

    current_since: datetime
    until: datetime
    previous_since: datetime
    bins: list[ScoreBin]


def score_drift(
    *, session: Session, scope: ResultScope, until: datetime, days: int, bins: int
) -> ScoreDrift:
    """``scope``'s own time bounds are ignored: the windows are [until-2N, until-N) and
    [until-N, until). Unflagged rows count only when the service stores them."""
    window = timedelta(days=days)
    current_since, previous_since = until - window, until - 2 * window
    # Bin edges as a CASE: portable, where CAST rounds on PostgreSQL and truncates on SQLite.
    index = case(*((ResultRow.score < (i + 1) / bins, i) for i in range(bins - 1)), else_=bins - 1)
    period = case((ResultRow.classified_at >= current_since, "current"), else_="previous")
    unbounded = scope.model_copy(update={"since": None, "until": None})
    stmt = unbounded.apply(
        select(index.label("bin"), period.label("period"), func.count().label("n"))
        .select_from(ResultRow)
        .where(ResultRow.classified_at >= previous_since, ResultRow.classified_at < until)
    ).group_by(index, period)
    counts = {(int(r.bin), str(r.period)): int(r.n) for r in session.execute(stmt)}
    return ScoreDrift(
        current_since=current_since,
        until=until,
        previous_since=previous_since,
        bins=[
            ScoreBin(
                low=i / bins,
                high=(i + 1) / bins,
                current=counts.get((i, "current"), 0),
                previous=counts.get((i, "previous"), 0),
            )
            for i in range(bins)
        ],
    )


@dataclass(frozen=True, kw_only=True)
class ReviewDay:
    """Flags first decided on one UTC day, and how long after classification that was."""

    day: str
    reviewed: int
    median_hours: float
    p90_hours: float


@dataclass(frozen=True, kw_only=True)
class ReviewTimes:
    #: Flagged results still waiting for a first decision (in scope).
    pending: int
    oldest_pending_at: datetime | None
    days: list[ReviewDay]


def _quantile(sorted_values: list[float], q: float) -> float:
    # Nearest rank: a value that occurred, no interpolation between two people's times.
    rank = max(0, min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1))))
    return sorted_values[rank]


def review_times(*, session: Session, scope: ResultScope) -> ReviewTimes:
    """The backlog now, and the time from classification to first decision per day."""
    pending_stmt = scope.apply(
        select(func.count(), func.min(ResultRow.classified_at))
        .select_from(ResultRow)
        .where(ResultRow.flagged.is_(True), ResultRow.review_status == ReviewStatus.PENDING.value)
    )
    pending, oldest = session.execute(pending_stmt).one()
    first = (
        select(
            DecisionRow.result_id.label("result_id"),
            func.min(DecisionRow.decided_at).label("decided_at"),
        )
        .group_by(DecisionRow.result_id)
        .subquery("first_decision")
    )
    # Per-result times are read and summarised here: quantiles have no portable SQL form.
    rows = session.execute(
        scope.apply(
            select(ResultRow.classified_at, first.c.decided_at)
            .select_from(ResultRow)
            .join(first, first.c.result_id == ResultRow.id)
        )
    ).all()
    per_day: dict[str, list[float]] = {}
    for classified_at, decided_at in rows:
        decided = _aware(decided_at)
        hours = max(0.0, (decided - _aware(classified_at)).total_seconds() / 3600)
        per_day.setdefault(decided.date().isoformat(), []).append(hours)
    days = []
    for day in sorted(per_day):
        values = sorted(per_day[day])
        days.append(
            ReviewDay(
                day=day,
                reviewed=len(values),
                median_hours=_quantile(values, 0.5),
                p90_hours=_quantile(values, 0.9),
            )
        )
    return ReviewTimes(
        pending=int(pending),
        oldest_pending_at=_aware(oldest) if oldest is not None else None,
        days=days,
    )


def _aware(value: datetime) -> datetime:
    # SQLite returns naive UTC wall-clock times.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
