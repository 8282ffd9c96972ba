"""Engine and session factory for the results database (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import DatabaseSettings


def make_engine(settings: DatabaseSettings) -> Engine:
    engine = create_engine(settings.url, echo=settings.echo, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # SQLite ignores ON DELETE CASCADE unless asked per connection.
        event.listen(engine, "connect", _sqlite_foreign_keys)
    return engine


def _sqlite_foreign_keys(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


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
