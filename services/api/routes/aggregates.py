"""``/aggregates``: figures for analysts. Counts only: no text ever leaves here, and every
cell of fewer than ``console.min_cell_size`` items is suppressed (``results_query.privacy``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from depdetect.settings import Settings, StoreUnflagged
from schemas.messages import utcnow
from services.api.deps import FiguresDep, SessionDep, SettingsDep
from services.api.models import (
    FlagCountsPublic,
    OutcomesPublic,
    ReviewTimesPublic,
    ScoreDriftPublic,
)
from services.api.presenters import (
    flag_counts_public,
    outcomes_public,
    review_times_public,
    score_drift_public,
)
from services.results_query.aggregates import (
    Dimension,
    decision_outcomes,
    flag_counts,
    review_times,
    score_drift,
)
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


def _k(settings: Settings) -> int:
    return settings.console.min_cell_size


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
        rows,
        has_denominator=settings.storage.store_unflagged is not StoreUnflagged.NOTHING,
        min_cell_size=_k(settings),
    )


@router.get("/outcomes", summary="Moderators' verdicts on flags, per model version")
def read_outcomes(
    _principal: FiguresDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[OutcomesQuery, Query()],
) -> OutcomesPublic:
    scope = ResultScope.model_validate(query.model_dump(exclude={"by_language"}))
    rows = decision_outcomes(session=session, scope=scope, by_language=query.by_language)
    return outcomes_public(rows, min_cell_size=_k(settings))


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
    drift = score_drift(session=session, scope=scope, until=until, days=query.days, bins=query.bins)
    return score_drift_public(drift, min_cell_size=_k(settings))


@router.get("/reviews", summary="Review backlog, and time from flag to first decision per day")
def read_review_times(
    _principal: FiguresDep,
    session: SessionDep,
    settings: SettingsDep,
    query: Annotated[ResultScope, Query()],
) -> ReviewTimesPublic:
    times = review_times(session=session, scope=query)
    return review_times_public(times, min_cell_size=_k(settings), now=utcnow())
