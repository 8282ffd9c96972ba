"""``/aggregates``: figures for analysts. Counts only: no text ever leaves here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from depdetect.settings import StoreUnflagged
from services.api.deps import FiguresDep, SessionDep, SettingsDep
from services.api.models import FlagCountsPublic, OutcomesPublic
from services.api.presenters import flag_counts_public, outcomes_public
from services.results_query.aggregates import Dimension, decision_outcomes, flag_counts
from services.results_query.filters import ResultScope

router = APIRouter(prefix="/aggregates", tags=["aggregates"])


class FlagCountsQuery(ResultScope):
    by: list[Dimension] = Field(
        default_factory=lambda: [Dimension.DAY],
        description="Group by these (repeat the parameter to combine them).",
    )


@router.get("/flags", summary="Flag counts and rates per day, language, source, model")
def read_flag_counts(
    _principal: FiguresDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[FlagCountsQuery, Query()],
) -> FlagCountsPublic:
    rows = flag_counts(session=session, scope=query, by=query.by)
    # Without stored unflagged rows the denominator is unknown: no rate beats a false 100 %.
    return flag_counts_public(
        rows, has_denominator=settings.storage.store_unflagged is not StoreUnflagged.NOTHING
    )


@router.get("/outcomes", summary="Moderators' verdicts on flags, per model version")
def read_outcomes(
    _principal: FiguresDep, session: SessionDep, query: Annotated[ResultScope, Query()]
) -> OutcomesPublic:
    return outcomes_public(decision_outcomes(session=session, scope=query))
