"""Retention: delete whole result rows (texts included) older than a cut-off."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from schemas.tables import DecisionRow, ResultRow


def purge_results(*, session: Session, classified_before: datetime, dry_run: bool = False) -> int:
    """Delete results classified before the cut-off with their decisions; returns the count."""
    old = select(ResultRow.id).where(ResultRow.classified_at < classified_before)
    count = session.scalar(select(func.count()).select_from(old.subquery())) or 0
    if dry_run or not count:
        return count
    # Decisions first: SQLite connections opened elsewhere may not enforce ON DELETE CASCADE.
    session.execute(delete(DecisionRow).where(DecisionRow.result_id.in_(old)))
    session.execute(delete(ResultRow).where(ResultRow.classified_at < classified_before))
    return count
