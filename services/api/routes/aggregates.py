"""``/aggregates``: figures for analysts. Counts only: no text ever leaves here, and every
cell of fewer than ``console.min_cell_size`` items is suppressed (``results_query.privacy``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from schemas.messages import utcnow
from services.api.counts import (
    flag_counts_shown,
    outcomes_shown,
    review_times_shown,
    score_drift_shown,
)
from services.api.deps import FiguresDep, SessionDep, SettingsDep
from services.api.models import (
    FlagCountsPublic,
    OutcomesPublic,
    ReviewTimesPublic,
    ScoreDriftPublic,
)
from services.results_query.aggregates import Dimension
from services.results_query.filters import CleanStr, LanguageCode, ResultScope, UtcDatetime

router = APIRouter(prefix="/aggregates", tags=["aggregates"])


class FlagCountsQuery(ResultScope):
    by: list[Dimension] = Field(
        default_factory=lambda: [Dimension.DAY],
        description="Group by these (repeat the parameter to combine them).",
    )


class OutcomesQuery(ResultScope):
    by_language: bool = Field(default=False, description="Group by language as well.")


class DriftQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int = Field(default=7, ge=1, le=366, description="N: the length of each window.")
    bins: int = Field(default=10, ge=2, le=50)
    until: UtcDatetime = Field(default=None, description="End of the current window; now.")
    language: LanguageCode | None = Field(default=None, description="ISO 639-1 code.")
    source: CleanStr | None = None
    model_version: CleanStr | None = None


@router.get("/flags", summary="Flag counts and rates per day, language, source, model")
def read_flag_counts(
    _principal: FiguresDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[FlagCountsQuery, Query()],
) -> FlagCountsPublic:
    return flag_counts_shown(session, settings, scope=query, by=query.by)


@router.get("/outcomes", summary="Moderators' verdicts on flags, per model version")
def read_outcomes(
    _principal: FiguresDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[OutcomesQuery, Query()],
) -> OutcomesPublic:
    scope = ResultScope.model_validate(query.model_dump(exclude={"by_language"}))
    return outcomes_shown(session, settings, scope=scope, by_language=query.by_language)


@router.get("/scores", summary="Score histogram: last N days against the N days before")
def read_score_drift(
    _principal: FiguresDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[DriftQuery, Query()],
) -> ScoreDriftPublic:
    scope = ResultScope(
        language=query.language, source=query.source, model_version=query.model_version
    )
    until: datetime = query.until or utcnow()
    return score_drift_shown(
        session, settings, scope=scope, until=until, days=query.days, bins=query.bins
    )


@router.get("/reviews", summary="Review backlog, and time from flag to first decision per day")
def read_review_times(
    _principal: FiguresDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[ResultScope, Query()],
) -> ReviewTimesPublic:
    return review_times_shown(session, settings, scope=query, now=utcnow())
