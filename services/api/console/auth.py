"""Console sign-in: an API token is exchanged for a session whose secret lives in an
HttpOnly cookie. The database keeps only the secret's SHA-256 (like tokens), and the
session dies with its token (revoked) or at its expiry, whichever comes first.

CSRF: every form carries a token derived from the session secret (HMAC), so nothing
more is stored and a page of another site, which cannot read the cookie, cannot forge
it. The sign-in form, before any session, uses a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from schemas.tables import ApiTokenRow, ConsoleSessionRow
from services.api.security.tokens import Principal, authenticate, hash_token, principal_of

SESSION_COOKIE = "depdetect_session"
SIGN_IN_COOKIE = "depdetect_sign_in"
CSRF_FIELD = "csrf_token"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def csrf_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"depdetect-console-csrf", hashlib.sha256).hexdigest()


def csrf_matches(secret: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_for(secret), presented)


def open_session(
    *, session: Session, token_secret: str, now: datetime, ttl: timedelta
) -> tuple[str, Principal] | None:
    """A new session for an active token (the caller commits), or None."""
    principal = authenticate(session=session, secret=token_secret)
    if principal is None:
        return None
    # Housekeeping on the way: sessions over a day past their end are of no use to anyone.
    session.execute(
        delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now - timedelta(days=1))
    )
    secret = new_secret()
    session.add(
        ConsoleSessionRow(
            session_sha256=hash_token(secret),
            token_id=principal.token_id,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    session.flush()
    return secret, principal


def session_principal(*, session: Session, secret: str, now: datetime) -> Principal | None:
    """Who holds this live session: unknown, ended, expired or revoked give None."""
    row = session.execute(
        select(ApiTokenRow.id, ApiTokenRow.name, ApiTokenRow.role)
        .join(ConsoleSessionRow, ConsoleSessionRow.token_id == ApiTokenRow.id)
        .where(
            ConsoleSessionRow.session_sha256 == hash_token(secret),
            ConsoleSessionRow.ended_at.is_(None),
            ConsoleSessionRow.expires_at > now,
            ApiTokenRow.revoked_at.is_(None),
        )
    ).one_or_none()
    return None if row is None else principal_of(row.id, row.name, row.role)


def end_session(*, session: Session, secret: str, now: datetime) -> None:
    session.execute(
        update(ConsoleSessionRow)
        .where(
            ConsoleSessionRow.session_sha256 == hash_token(secret),
            ConsoleSessionRow.ended_at.is_(None),
        )
        .values(ended_at=now)
    )
