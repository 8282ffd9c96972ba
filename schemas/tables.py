"""Database tables (SQLAlchemy 2.0 typed models). Migrations live in ``schemas/migrations``.

Texts are sensitive: ``text`` is only kept for flagged rows (what moderators need),
and the retention purge deletes whole rows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names so that migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ReviewStatus(StrEnum):
    """``classification_results.review_status`` of a flagged row (NULL when unflagged)."""

    PENDING = "pending"
    DECIDED = "decided"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ResultRow(Base):
    """One classified text. Unique on ``message_id``: redelivery never makes a second row."""

    __tablename__ = "classification_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str] = mapped_column(String(32))
    flagged: Mapped[bool] = mapped_column(Boolean, index=True)
    threshold: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(100), index=True)
    language: Mapped[str | None] = mapped_column(String(8), index=True)
    language_detected: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(200), index=True)
    author_ref: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    classified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    inference_ms: Mapped[float | None] = mapped_column(Float)
    source_topic: Mapped[str | None] = mapped_column(String(249))
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    #: Outbox flag: set once the review event is on the broker (flagged rows only).
    review_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: A ``ReviewStatus`` value (the latest decision is in ``moderator_decisions``).
    review_status: Mapped[str | None] = mapped_column(String(32), index=True)

    decisions: Mapped[list[DecisionRow]] = relationship(
        back_populates="result", order_by="DecisionRow.revision", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_results_unpublished", "flagged", "review_published_at"),)


class DecisionRow(Base):
    """A moderator decision. Revisions accumulate; nothing is overwritten."""

    __tablename__ = "moderator_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    decision_id: Mapped[str] = mapped_column(String(200), unique=True)
    result_id: Mapped[int] = mapped_column(
        ForeignKey("classification_results.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(32))
    moderator_id: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: Outbox flag for the decision event.
    event_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    result: Mapped[ResultRow] = relationship(back_populates="decisions")

    __table_args__ = (UniqueConstraint("result_id", "revision"),)


class ApiTokenRow(Base):
    """Bearer tokens for the results API; only a hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReviewClaimRow(Base):
    """A moderator's lease on a flagged result while the review console shows it to them.

    One row per result at most; a claim past ``expires_at`` is free for anyone to take over,
    so an abandoned tab never keeps an item out of the queue for long.
    """

    __tablename__ = "review_claims"

    result_id: Mapped[int] = mapped_column(
        ForeignKey("classification_results.id", ondelete="CASCADE"), primary_key=True
    )
    moderator_id: Mapped[str] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ConsoleSessionRow(Base):
    """A signed-in browser of the review console or the dashboard; only a hash is stored.

    The session belongs to the API token it was opened with: revoking the token ends it.
    """

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    session_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
