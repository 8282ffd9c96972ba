"""Request and response bodies. Families: ``XPublic`` for one, ``XsPublic{data, count}``
for lists. Only models named for moderators carry texts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.messages import AwareDatetime, Decision, Label
from services.results_query.decisions import CleanIdentifier, Note


class PublicModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class DecisionCreate(BaseModel):
    """A moderator's decision on a flagged result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Decision
    note: Note | None = Field(default=None, description="Optional; at most 2000 characters.")
    moderator_id: CleanIdentifier | None = Field(
        default=None,
        description="Defaults to the token's name. Only an admin token may decide for "
        "someone else.",
    )
    decision_id: CleanIdentifier | None = Field(
        default=None,
        description="Idempotency key: repeating a request with the same id never records "
        "a second decision.",
    )


class DecisionPublic(PublicModel):
    decision_id: str
    result_id: int
    revision: int
    decision: Decision
    moderator_id: str
    note: str | None
    decided_at: AwareDatetime
    #: When the decision event reached the broker; null while it is pending.
    event_published_at: AwareDatetime | None


class DecisionsPublic(BaseModel):
    data: list[DecisionPublic]
    count: int


class ResultPublic(PublicModel):
    """A classified text as a moderator sees it. Screening support, not a diagnosis."""

    id: int
    message_id: str
    score: float
    label: Label
    flagged: bool
    threshold: float
    model_version: str
    language: str | None
    language_detected: bool
    source: str
    author_ref: str | None
    text: str | None
    submitted_at: AwareDatetime
    classified_at: AwareDatetime
    review_status: str | None
    #: The latest decision, null while undecided.
    decision: Decision | None = None


class ResultsPublic(BaseModel):
    data: list[ResultPublic]
    #: Results matching the filter over all pages.
    count: int


class ResultDetailPublic(ResultPublic):
    #: Every revision, oldest first.
    decisions: list[DecisionPublic]


class FlagCountPublic(BaseModel):
    day: str | None = Field(default=None, description="UTC date, when grouped by day.")
    language: str | None = None
    source: str | None = None
    model_version: str | None = None
    classified: int = Field(description="Stored results in the group.")
    flagged: int
    flag_rate: float | None = Field(
        description="flagged / classified; null when the service stores flagged rows only "
        "(storage.store_unflagged=nothing), where no denominator exists."
    )


class FlagCountsPublic(BaseModel):
    data: list[FlagCountPublic]
    count: int


class OutcomePublic(BaseModel):
    model_version: str
    flagged: int
    pending: int
    decided: int
    confirmed: int
    not_indicators: int
    escalated: int
    precision: float | None = Field(
        description="confirmed / (confirmed + not_indicators) by the latest decisions; "
        "null before any judged flag."
    )


class OutcomesPublic(BaseModel):
    data: list[OutcomePublic]
    count: int
