"""Engine and session factory for the results database (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import DatabaseSettings
from services.storage.engine import make_engine as storage_engine


def make_engine(settings: DatabaseSettings) -> Engine:
    # One engine recipe for the whole project (SQLite pragmas incl. foreign keys, pool).
    return storage_engine(settings.url, echo=settings.echo)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: rows read in a transaction stay usable after it commits.
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def open_sessions(settings: DatabaseSettings) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh engine that is disposed afterwards (for the CLI)."""
    engine = make_engine(settings)
    try:
        yield make_sessions(engine)
    finally:
        engine.dispose()
