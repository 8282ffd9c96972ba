"""Figures for analysts: counts, never texts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from schemas.messages import Decision
from schemas.tables import ResultRow
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


def decision_outcomes(*, session: Session, scope: ResultScope) -> list[DecisionOutcome]:
    """Per model version: how the latest decisions on its flags came out."""
    latest = latest_decisions()
    stmt = scope.apply(
        select(
            ResultRow.model_version,
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
    stmt = stmt.group_by(ResultRow.model_version).order_by(ResultRow.model_version)
    return [
        DecisionOutcome(
            model_version=r.model_version,
            flagged=int(r.flagged),
            pending=int(r.pending),
            confirmed=int(r.confirmed),
            not_indicators=int(r.not_indicators),
            escalated=int(r.escalated),
        )
        for r in session.execute(stmt)
    ]
