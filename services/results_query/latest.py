"""The latest revision of each result's decision: what the result is judged to be now."""

from __future__ import annotations

from sqlalchemy import Subquery, and_, func, select

from schemas.tables import DecisionRow


def latest_decisions() -> Subquery:
    """Columns ``result_id``, ``decision``, ``revision``; one row per decided result."""
    newest = (
        select(
            DecisionRow.result_id.label("result_id"),
            func.max(DecisionRow.revision).label("revision"),
        )
        .group_by(DecisionRow.result_id)
        .subquery("newest")
    )
    return (
        select(DecisionRow.result_id, DecisionRow.decision, DecisionRow.revision)
        .join(
            newest,
            and_(
                DecisionRow.result_id == newest.c.result_id,
                DecisionRow.revision == newest.c.revision,
            ),
        )
        .subquery("latest")
    )
