"""The analysts' counts: each ``results_query`` aggregate through its presenter, with the
small-cell threshold and the rate rule taken from settings. ``/aggregates`` and the console
dashboard both call these, so the JSON and the pages cannot disagree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from depdetect.settings import Settings, StoreUnflagged
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
from services.results_query.filters import ResultScope


def has_rates(settings: Settings) -> bool:
    # Without stored unflagged rows the denominator is unknown: no rate beats a false 100 %.
    return settings.storage.store_unflagged is not StoreUnflagged.NOTHING


def flag_counts_shown(
    session: Session, settings: Settings, *, scope: ResultScope, by: list[Dimension]
) -> FlagCountsPublic:
    return flag_counts_public(
        flag_counts(session=session, scope=scope, by=by),
        has_denominator=has_rates(settings),
        min_cell_size=settings.console.min_cell_size,
    )


def outcomes_shown(
    session: Session, settings: Settings, *, scope: ResultScope, by_language: bool
) -> OutcomesPublic:
    return outcomes_public(
        decision_outcomes(session=session, scope=scope, by_language=by_language),
        min_cell_size=settings.console.min_cell_size,
    )


def score_drift_shown(
    session: Session,
    settings: Settings,
    *,
    scope: ResultScope,
    until: datetime,
    days: int,
    bins: int,
) -> ScoreDriftPublic:
    return score_drift_public(
        score_drift(session=session, scope=scope, until=until, days=days, bins=bins),
        min_cell_size=settings.console.min_cell_size,
    )


def review_times_shown(
    session: Session, settings: Settings, *, scope: ResultScope, now: datetime
) -> ReviewTimesPublic:
    return review_times_public(
        review_times(session=session, scope=scope),
        min_cell_size=settings.console.min_cell_size,
        now=now,
    )
