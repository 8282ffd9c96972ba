"""API tokens: random secrets shown once, stored only as SHA-256 hashes.

A plain SHA-256 is enough here (no salt, no slow hash): the secrets are 256 random
bits, not passwords, so there is nothing to guess from a leaked hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from schemas.errors import DepdetectError
from schemas.messages import utcnow
from schemas.tables import ApiTokenRow

#: Recognisable in logs and secret scanners.
TOKEN_PREFIX = "ddt_"


class Role(StrEnum):
    """What a token may do."""

    MODERATOR = "moderator"
    """Reads results with their texts and records decisions."""
    ANALYST = "analyst"
    """Reads aggregate figures only, never a text."""
    ADMIN = "admin"
    """Everything a moderator and an analyst may do, and deciding on others' behalf."""


class TokenError(DepdetectError, ValueError):
    """A token cannot be created or revoked as asked."""


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: the token's name is the moderator id recorded with decisions."""

    token_id: int
    name: str
    role: Role


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    row: ApiTokenRow
    #: The secret itself; shown once and never stored.
    secret: str


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(*, session: Session, name: str, role: Role) -> IssuedToken:
    if not name or len(name) > 200 or any(c.isspace() or c == "\x00" for c in name):
        # The name becomes the moderator id of decisions, which has no whitespace.
        raise TokenError(f"token name {name!r} must be 1-200 characters without whitespace")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(
        name=name, role=role.value, token_sha256=hash_token(secret), created_at=utcnow()
    )
    session.add(row)
    session.flush()
    return IssuedToken(row=row, secret=secret)


def revoke_tokens(*, session: Session, name_or_id: str) -> list[ApiTokenRow]:
    """Revoke the active tokens with this id or name; returns those revoked."""
    match = ApiTokenRow.name == name_or_id
    if name_or_id.isdigit():
        match = or_(match, ApiTokenRow.id == int(name_or_id))
    rows = list(session.scalars(select(ApiTokenRow).where(match, ApiTokenRow.revoked_at.is_(None))))
    if not rows:
        raise TokenError(f"no active token has the id or name {name_or_id!r}")
    now = utcnow()
    for row in rows:
        row.revoked_at = now
    session.flush()
    return rows


def list_tokens(*, session: Session, include_revoked: bool = False) -> list[ApiTokenRow]:
    stmt = select(ApiTokenRow).order_by(ApiTokenRow.id)
    if not include_revoked:
        stmt = stmt.where(ApiTokenRow.revoked_at.is_(None))
    return list(session.scalars(stmt))


def authenticate(*, session: Session, secret: str) -> Principal | None:
    """The principal of an active token, or None for unknown and revoked ones."""
    row = session.scalar(
        select(ApiTokenRow).where(
            ApiTokenRow.token_sha256 == hash_token(secret), ApiTokenRow.revoked_at.is_(None)
        )
    )
    return None if row is None else principal_of(row.id, row.name, row.role)


def principal_of(token_id: int, name: str, role: str) -> Principal | None:
    """The principal of a stored token's columns."""
    try:
        known = Role(role)
    except ValueError:
        # A role this release does not know grants nothing.
        return None
    return Principal(token_id=token_id, name=name, role=known)
