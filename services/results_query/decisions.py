"""Recording moderator decisions: idempotent repeats, revisions for changes, outbox rows.

A decision row is written with ``event_published_at`` unset, in the same transaction
that marks the result decided; the relay (``services.api.outbox``) publishes it after
the commit. So a decision the client saw succeed is never lost, even if Kafka is down.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from schemas.messages import Decision, Identifier, utcnow
from schemas.tables import DecisionRow, ResultRow, ReviewStatus
from services.results_query.errors import (
    DecisionContentionError,
    DecisionIdConflictError,
    NotFlaggedError,
    ResultNotFoundError,
)
from services.results_query.filters import reject_nul

#: The ``note`` limit of the ModeratorDecision contract: a longer note could not be published.
NOTE_MAX_CHARS = 2000

CleanIdentifier = Annotated[Identifier, AfterValidator(reject_nul)]
Note = Annotated[str, Field(max_length=NOTE_MAX_CHARS), AfterValidator(reject_nul)]


class DecisionRequest(BaseModel):
    """What a moderator decided; validated as strictly as the event it becomes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    moderator_id: CleanIdentifier
    note: Note | None = None
    #: Chosen by a client that wants to retry safely; a new UUID otherwise.
    decision_id: CleanIdentifier | None = None


@dataclass(frozen=True, kw_only=True)
class RecordedDecision:
    row: DecisionRow
    #: False when the request repeated a decision already recorded (nothing new written).
    created: bool


def _same(row: DecisionRow, request: DecisionRequest) -> bool:
    return (
        row.decision == request.decision.value
        and row.moderator_id == request.moderator_id
        and row.note == request.note
    )


def record_decision(
    *, session: Session, result_id: int, request: DecisionRequest, now: datetime | None = None
) -> RecordedDecision:
    """Add the decision to ``session`` (the caller commits). Repeats change nothing."""
    # FOR UPDATE serialises concurrent decisions on one result (PostgreSQL; SQLite
    # serialises writers anyway and the unique (result_id, revision) catches the rest).
    result = session.scalar(select(ResultRow).where(ResultRow.id == result_id).with_for_update())
    if result is None:
        raise ResultNotFoundError(result_id)
    if not result.flagged:
        raise NotFlaggedError(result_id)
    if request.decision_id is not None:
        existing = session.scalar(
            select(DecisionRow).where(DecisionRow.decision_id == request.decision_id)
        )
        if existing is not None:
            if existing.result_id == result_id and _same(existing, request):
                return RecordedDecision(row=existing, created=False)
            raise DecisionIdConflictError(request.decision_id)
    latest = session.scalar(
        select(DecisionRow)
        .where(DecisionRow.result_id == result_id)
        .order_by(DecisionRow.revision.desc())
        .limit(1)
    )
    if latest is not None and request.decision_id is None and _same(latest, request):
        return RecordedDecision(row=latest, created=False)
    row = DecisionRow(
        decision_id=request.decision_id or str(uuid.uuid4()),
        result_id=result_id,
        revision=latest.revision + 1 if latest is not None else 1,
        decision=request.decision.value,
        moderator_id=request.moderator_id,
        note=request.note,
        decided_at=now or utcnow(),
        event_published_at=None,
    )
    session.add(row)
    result.review_status = ReviewStatus.DECIDED.value
    session.flush()
    return RecordedDecision(row=row, created=True)


def commit_decision(
    *,
    sessions: sessionmaker[Session],
    result_id: int,
    request: DecisionRequest,
    attempts: int = 3,
    within: Callable[[Session], None] | None = None,
) -> RecordedDecision:
    """Record and commit in one transaction, retrying when a concurrent writer won the race.

    ``within`` runs in that transaction after the result row is locked (the review console
    checks and releases its claim there); what it raises rolls the decision back."""
    for _ in range(attempts):
        with sessions() as session:
            try:
                with session.begin():
                    recorded = record_decision(
                        session=session, result_id=result_id, request=request
                    )
                    if within is not None:
                        within(session)
                    return recorded
            except IntegrityError:
                # Another transaction took this revision (or decision id) first; re-read.
                continue
    raise DecisionContentionError(
        f"result {result_id}: {attempts} concurrent attempts to record a decision collided; "
        "try again"
    )


def list_decisions(*, session: Session, result_id: int) -> list[DecisionRow]:
    """Every revision, oldest first."""
    if session.get(ResultRow, result_id) is None:
        raise ResultNotFoundError(result_id)
    return list(
        session.scalars(
            select(DecisionRow)
            .where(DecisionRow.result_id == result_id)
            .order_by(DecisionRow.revision)
        )
    )
