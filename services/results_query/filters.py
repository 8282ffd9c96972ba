"""Which results a query covers. One definition serves the API (as query parameters),
the CLI options and the data layer, so that all three accept the same values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Select

from schemas.messages import Decision
from schemas.tables import ResultRow, ReviewStatus
from services.results_query.latest import latest_decisions


def reject_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refusing it here turns a 500 into a clear 422.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _utc(value: datetime | None) -> datetime | None:
    # Naive times are read as UTC; SQLite keeps wall-clock strings, so everything is UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


CleanStr = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(reject_nul)]
LanguageCode = Annotated[str, Field(pattern=r"^[A-Za-z-]{1,8}$")]
UtcDatetime = Annotated[datetime | None, AfterValidator(_utc)]


class ResultScope(BaseModel):
    """The slice of results an aggregate or an export covers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: UtcDatetime = Field(
        default=None, description="Classified at or after this time (ISO 8601; naive = UTC)."
    )
    until: UtcDatetime = Field(default=None, description="Classified before this time.")
    language: LanguageCode | None = Field(default=None, description="ISO 639-1 code.")
    source: CleanStr | None = None
    model_version: CleanStr | None = None

    @model_validator(mode="after")
    def _ordered_times(self) -> Self:
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        return self

    def apply(self, stmt: Select) -> Select:  # type: ignore[type-arg]
        if self.since is not None:
            stmt = stmt.where(ResultRow.classified_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(ResultRow.classified_at < self.until)
        if self.language is not None:
            stmt = stmt.where(ResultRow.language == self.language)
        if self.source is not None:
            stmt = stmt.where(ResultRow.source == self.source)
        if self.model_version is not None:
            stmt = stmt.where(ResultRow.model_version == self.model_version)
        return stmt


class ResultFilter(ResultScope):
    """What a moderator filters a result list by."""

    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    max_score: float | None = Field(default=None, ge=0.0, le=1.0)
    flagged: bool | None = None
    review_status: ReviewStatus | None = None
    decision: Decision | None = Field(
        default=None, description="The latest decision on the result (implies decided)."
    )

    @model_validator(mode="after")
    def _ordered_scores(self) -> Self:
        if (
            self.min_score is not None
            and self.max_score is not None
            and self.min_score > self.max_score
        ):
            raise ValueError(
                f"min_score ({self.min_score}) must not exceed max_score ({self.max_score})"
            )
        return self

    def apply(self, stmt: Select) -> Select:  # type: ignore[type-arg]
        stmt = super().apply(stmt)
        if self.min_score is not None:
            stmt = stmt.where(ResultRow.score >= self.min_score)
        if self.max_score is not None:
            stmt = stmt.where(ResultRow.score <= self.max_score)
        if self.flagged is not None:
            stmt = stmt.where(ResultRow.flagged.is_(self.flagged))
        if self.review_status is not None:
            stmt = stmt.where(ResultRow.review_status == self.review_status.value)
        if self.decision is not None:
            latest = latest_decisions()
            stmt = stmt.where(
                ResultRow.id.in_(
                    latest.select()
                    .with_only_columns(latest.c.result_id)
                    .where(latest.c.decision == self.decision.value)
                )
            )
        return stmt
