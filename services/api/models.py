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


SUPPRESSED_DESCRIPTION = (
    "True when the cell counts fewer items than console.min_cell_size (k, default 10): "
    "its figures are then null, so that narrow filters cannot single out one person."
)


class FlagCountPublic(BaseModel):
    day: str | None = Field(default=None, description="UTC date, when grouped by day.")
    language: str | None = None
    source: str | None = None
    model_version: str | None = None
    suppressed: bool = Field(description=SUPPRESSED_DESCRIPTION)
    classified: int | None = Field(description="Stored results in the group.")
    flagged: int | None
    flag_rate: float | None = Field(
        description="flagged / classified; null when the service stores flagged rows only "
        "(storage.store_unflagged=nothing), where no denominator exists."
    )


class FlagCountsPublic(BaseModel):
    data: list[FlagCountPublic]
    count: int


class OutcomePublic(BaseModel):
    model_version: str
    language: str | None = Field(
        default=None, description="Set when grouped by language (by_language=true)."
    )
    suppressed: bool = Field(description=SUPPRESSED_DESCRIPTION + " The cell size is flagged.")
    flagged: int | None
    pending: int | None
    decided: int | None
    confirmed: int | None
    not_indicators: int | None
    escalated: int | None
    precision: float | None = Field(
        description="confirmed / (confirmed + not_indicators) by the latest decisions; "
        "null before any judged flag."
    )


class OutcomesPublic(BaseModel):
    data: list[OutcomePublic]
    count: int


class ScoreBinPublic(BaseModel):
    low: float
    high: float
    current: int | None = Field(description="Results in the last N days; null when suppressed.")
    previous: int | None = Field(description="Results in the N days before; null when suppressed.")


class ScoreDriftPublic(BaseModel):
    """Score histograms of [until-2N, until-N) and [until-N, until): a change of shape
    between the two is drift (in the texts or in the model)."""

    previous_since: AwareDatetime
    current_since: AwareDatetime
    until: AwareDatetime
    min_cell_size: int
    bins: list[ScoreBinPublic]


class ReviewDayPublic(BaseModel):
    day: str = Field(description="UTC date of the first decisions.")
    suppressed: bool = Field(description=SUPPRESSED_DESCRIPTION)
    reviewed: int | None
    median_hours: float | None = Field(description="Classification to first decision.")
    p90_hours: float | None


class ReviewTimesPublic(BaseModel):
    suppressed: bool = Field(description="The backlog figures are withheld (fewer than k).")
    pending: int | None = Field(description="Flags waiting for a first decision.")
    oldest_pending_hours: float | None
    min_cell_size: int
    days: list[ReviewDayPublic]
