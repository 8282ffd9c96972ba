"""The review queue and its claims: a lease per result, so that two moderators never
review the same flag at once. A claim past its expiry is anyone's to take: an abandoned
browser tab keeps an item out of the queue for ``console.claim_minutes`` at most."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from schemas.messages import Decision
from schemas.tables import DecisionRow, ResultRow, ReviewClaimRow, ReviewStatus
from services.results_query.errors import ClaimHeldError, NotFlaggedError, ResultNotFoundError
from services.results_query.filters import CleanStr, LanguageCode


class QueueOrder(StrEnum):
    SCORE = "score"
    """Highest score first (the default): the likeliest indicators are read first."""
    OLDEST = "oldest"
    """Longest waiting first."""


class QueueFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    order: QueueOrder = QueueOrder.SCORE
    language: LanguageCode | None = None
    source: CleanStr | None = None
    model_version: CleanStr | None = None


def _aware(value: datetime) -> datetime:
    # SQLite returns naive UTC wall-clock times.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class QueueItem:
    row: ResultRow
    #: Someone else's unexpired claim (the item is being reviewed), else None.
    claimed_by: str | None


@dataclass(frozen=True, kw_only=True)
class Escalation:
    result_id: int
    language: str | None
    source: str
    score: float
    moderator_id: str
    decided_at: datetime


@dataclass(frozen=True, kw_only=True)
class QueueView:
    items: list[QueueItem]
    #: Pending flags matching the filter, claimed ones included.
    waiting: int
    #: Of those, under someone else's unexpired claim.
    in_review: int
    oldest_at: datetime | None
    #: Recent urgent escalations (latest decision escalated), newest first.
    escalations: list[Escalation]


def _pending(flt: QueueFilter):  # type: ignore[no-untyped-def]
    conditions = [
        ResultRow.flagged.is_(True),
        ResultRow.review_status == ReviewStatus.PENDING.value,
    ]
    if flt.language is not None:
        conditions.append(ResultRow.language == flt.language)
    if flt.source is not None:
        conditions.append(ResultRow.source == flt.source)
    if flt.model_version is not None:
        conditions.append(ResultRow.model_version == flt.model_version)
    return and_(*conditions)


def _claimed_by_other(moderator_id: str, now: datetime):  # type: ignore[no-untyped-def]
    return and_(ReviewClaimRow.expires_at > now, ReviewClaimRow.moderator_id != moderator_id)


def _order(flt: QueueFilter) -> tuple[object, ...]:
    if flt.order is QueueOrder.OLDEST:
        return (ResultRow.classified_at.asc(), ResultRow.id.asc())
    return (ResultRow.score.desc(), ResultRow.classified_at.asc(), ResultRow.id.asc())


def queue_view(
    *,
    session: Session,
    flt: QueueFilter,
    moderator_id: str,
    now: datetime,
    limit: int = 50,
    escalations_since: timedelta = timedelta(days=7),
) -> QueueView:
    waiting, oldest = session.execute(
        select(func.count(), func.min(ResultRow.classified_at)).where(_pending(flt))
    ).one()
    in_review = session.scalar(
        select(func.count())
        .select_from(ResultRow)
        .join(ReviewClaimRow, ReviewClaimRow.result_id == ResultRow.id)
        .where(_pending(flt), _claimed_by_other(moderator_id, now))
    )
    other = (
        select(ReviewClaimRow.result_id, ReviewClaimRow.moderator_id)
        .where(_claimed_by_other(moderator_id, now))
        .subquery("other_claims")
    )
    rows = session.execute(
        select(ResultRow, other.c.moderator_id)
        .outerjoin(other, other.c.result_id == ResultRow.id)
        .where(_pending(flt))
        .order_by(*_order(flt))  # type: ignore[arg-type]
        .limit(limit)
    ).all()
    return QueueView(
        items=[QueueItem(row=row, claimed_by=by) for row, by in rows],
        waiting=int(waiting),
        in_review=int(in_review or 0),
        oldest_at=_aware(oldest) if oldest is not None else None,
        escalations=recent_escalations(session=session, since=now - escalations_since),
    )


def recent_escalations(*, session: Session, since: datetime, limit: int = 20) -> list[Escalation]:
    newest = (
        select(DecisionRow.result_id, func.max(DecisionRow.revision).label("revision"))
        .group_by(DecisionRow.result_id)
        .subquery("newest")
    )
    rows = session.execute(
        select(ResultRow, DecisionRow)
        .join(DecisionRow, DecisionRow.result_id == ResultRow.id)
        .join(
            newest,
            and_(
                newest.c.result_id == DecisionRow.result_id,
                newest.c.revision == DecisionRow.revision,
            ),
        )
        .where(DecisionRow.decision == Decision.ESCALATED.value, DecisionRow.decided_at >= since)
        .order_by(DecisionRow.decided_at.desc())
        .limit(limit)
    ).all()
    return [
        Escalation(
            result_id=result.id,
            language=result.language,
            source=result.source,
            score=result.score,
            moderator_id=decision.moderator_id,
            decided_at=_aware(decision.decided_at),
        )
        for result, decision in rows
    ]


def next_candidates(
    *, session: Session, flt: QueueFilter, moderator_id: str, now: datetime, limit: int = 5
) -> list[int]:
    """The first pending flags in queue order that nobody else is reviewing."""
    free = or_(
        ReviewClaimRow.result_id.is_(None),
        ReviewClaimRow.expires_at <= now,
        ReviewClaimRow.moderator_id == moderator_id,
    )
    return list(
        session.scalars(
            select(ResultRow.id)
            .outerjoin(ReviewClaimRow, ReviewClaimRow.result_id == ResultRow.id)
            .where(_pending(flt), free)
            .order_by(*_order(flt))  # type: ignore[arg-type]
            .limit(limit)
        )
    )


def claim_result(
    *, session: Session, result_id: int, moderator_id: str, now: datetime, minutes: int
) -> ReviewClaimRow:
    """Take or renew the claim (the caller commits). Raises ClaimHeldError while another
    moderator's claim runs."""
    # FOR UPDATE on the result serialises claims on it (PostgreSQL); on SQLite writers are
    # serialised anyway and the primary key catches a second insert.
    result = session.scalar(select(ResultRow).where(ResultRow.id == result_id).with_for_update())
    if result is None:
        raise ResultNotFoundError(result_id)
    if not result.flagged:
        raise NotFlaggedError(result_id)
    claim = session.scalar(
        select(ReviewClaimRow)
        .where(ReviewClaimRow.result_id == result_id)
        .execution_options(populate_existing=True)
    )
    expires = now + timedelta(minutes=minutes)
    if claim is None:
        claim = ReviewClaimRow(
            result_id=result_id, moderator_id=moderator_id, claimed_at=now, expires_at=expires
        )
        session.add(claim)
    elif claim.moderator_id == moderator_id or _aware(claim.expires_at) <= now:
        if claim.moderator_id != moderator_id:
            claim.claimed_at = now
        claim.moderator_id = moderator_id
        claim.expires_at = expires
    else:
        raise ClaimHeldError(result_id, claim.moderator_id, _aware(claim.expires_at))
    session.flush()
    return claim


def check_claim(*, session: Session, result_id: int, moderator_id: str, now: datetime) -> None:
    """Before a decision: nobody else may have taken the item over. An expired claim of
    one's own still counts (nobody else took it)."""
    claim = session.get(ReviewClaimRow, result_id, populate_existing=True)
    if claim is not None and claim.moderator_id != moderator_id and _aware(claim.expires_at) > now:
        raise ClaimHeldError(result_id, claim.moderator_id, _aware(claim.expires_at))


def release_claim(*, session: Session, result_id: int, moderator_id: str) -> None:
    session.execute(
        delete(ReviewClaimRow).where(
            ReviewClaimRow.result_id == result_id, ReviewClaimRow.moderator_id == moderator_id
        )
    )


@dataclass(frozen=True, kw_only=True)
class QueueFacets:
    """The values the queue can be filtered by (among pending flags)."""

    languages: list[str]
    sources: list[str]
    model_versions: list[str]


def queue_facets(*, session: Session) -> QueueFacets:
    pending = _pending(QueueFilter())

    def values(column: Any) -> list[str]:
        stmt = select(column).where(pending, column.isnot(None)).distinct()
        return sorted(str(v) for v in session.scalars(stmt))

    return QueueFacets(
        languages=values(ResultRow.language),
        sources=values(ResultRow.source),
        model_versions=values(ResultRow.model_version),
    )
