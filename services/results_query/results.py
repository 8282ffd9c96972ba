"""Listing and fetching result rows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from schemas.messages import Decision
from schemas.tables import ResultRow
from services.results_query.errors import ResultNotFoundError
from services.results_query.filters import ResultFilter
from services.results_query.latest import latest_decisions


@dataclass(frozen=True, kw_only=True)
class ResultItem:
    row: ResultRow
    #: The latest decision's value, None while undecided.
    decision: Decision | None


@dataclass(frozen=True, kw_only=True)
class ResultPage:
    items: list[ResultItem]
    #: Rows matching the filter, over all pages.
    count: int


def list_results(
    *,
    session: Session,
    filters: ResultFilter,
    limit: int,
    offset: int = 0,
    newest_first: bool = True,
) -> ResultPage:
    latest = latest_decisions()
    count = session.scalar(filters.apply(select(func.count()).select_from(ResultRow))) or 0
    order = (
        (ResultRow.classified_at.desc(), ResultRow.id.desc())
        if newest_first
        else (ResultRow.classified_at.asc(), ResultRow.id.asc())
    )
    stmt = (
        filters.apply(select(ResultRow, latest.c.decision))
        .outerjoin(latest, latest.c.result_id == ResultRow.id)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    )
    items = [
        ResultItem(row=row, decision=Decision(decision) if decision else None)
        for row, decision in session.execute(stmt).all()
    ]
    return ResultPage(items=items, count=count)


def get_result(*, session: Session, result_id: int) -> ResultRow:
    """The row with its whole decision history (oldest revision first)."""
    row = session.scalar(
        select(ResultRow)
        .where(ResultRow.id == result_id)
        .options(selectinload(ResultRow.decisions))
    )
    if row is None:
        raise ResultNotFoundError(result_id)
    return row
