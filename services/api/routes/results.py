"""``/results``: flagged texts for moderators (texts included, so moderators only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from services.api.deps import ModeratorDep, ResultIdPath, SessionDep
from services.api.models import ResultDetailPublic, ResultsPublic
from services.api.presenters import result_detail_public, results_public
from services.results_query.filters import ResultFilter
from services.results_query.results import get_result, list_results

router = APIRouter(prefix="/results", tags=["results"])


class ResultsQuery(ResultFilter):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    order: Literal["newest", "oldest"] = Field(
        default="newest", description="By classification time."
    )


@router.get("", summary="List and filter results")
def read_results(
    _principal: ModeratorDep, session: SessionDep, query: Annotated[ResultsQuery, Query()]
) -> ResultsPublic:
    page = list_results(
        session=session,
        filters=query,
        limit=query.limit,
        offset=query.offset,
        newest_first=query.order == "newest",
    )
    return results_public(page)


@router.get("/{result_id}", summary="One result with its decision history")
def read_result(
    _principal: ModeratorDep, session: SessionDep, result_id: ResultIdPath
) -> ResultDetailPublic:
    return result_detail_public(get_result(session=session, result_id=result_id))
