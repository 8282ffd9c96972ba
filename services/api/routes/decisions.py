"""``/results/{id}/decisions``: moderators' decisions, one revision each, never overwritten."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import ValidationError

from schemas.messages import describe_validation_error
from services.api.deps import ModeratorDep, RelayDep, ResultIdPath, SessionDep, SessionsDep
from services.api.models import DecisionCreate, DecisionPublic, DecisionsPublic
from services.api.security.tokens import Role
from services.results_query.decisions import DecisionRequest, commit_decision, list_decisions

router = APIRouter(prefix="/results/{result_id}/decisions", tags=["decisions"])


@router.get("", summary="Every revision of the decision on a result")
def read_decisions(
    _principal: ModeratorDep, session: SessionDep, result_id: ResultIdPath
) -> DecisionsPublic:
    rows = list_decisions(session=session, result_id=result_id)
    return DecisionsPublic(data=[DecisionPublic.model_validate(r) for r in rows], count=len(rows))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Record a decision",
    responses={
        200: {"description": "The same decision was already recorded; nothing new written."},
        404: {"description": "No such result."},
        409: {"description": "The result was not flagged, or decision_id is taken."},
    },
)
def create_decision(
    principal: ModeratorDep,
    sessions: SessionsDep,
    relay: RelayDep,
    result_id: ResultIdPath,
    body: DecisionCreate,
    response: Response,
) -> DecisionPublic:
    """A new revision when the decision differs from the latest one; the decision event
    is published to the decision topic after the commit (at least once)."""
    moderator_id = body.moderator_id or principal.name
    if moderator_id != principal.name and principal.role is not Role.ADMIN:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a {principal.role.value} token records decisions as {principal.name!r} only",
        )
    try:
        request = DecisionRequest(
            decision=body.decision,
            moderator_id=moderator_id,
            note=body.note,
            decision_id=body.decision_id,
        )
    except ValidationError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, describe_validation_error(exc)
        ) from exc
    recorded = commit_decision(sessions=sessions, result_id=result_id, request=request)
    if recorded.created:
        relay.wake()
    else:
        response.status_code = status.HTTP_200_OK
    return DecisionPublic.model_validate(recorded.row)
