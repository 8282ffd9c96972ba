"""Engine construction for SQLite (embedded default) and PostgreSQL.

Durability: a committed offset must never point past a row lost on power failure.
PostgreSQL commits are durable by default (``synchronous_commit=on``: the WAL is flushed
before COMMIT returns). SQLite runs in WAL mode (readers, e.g. the API, do not block the
writer) with ``synchronous=FULL``: the WAL is fsynced at every commit, so a commit that
returned survives a power cut. (``NORMAL``, SQLite's usual WAL pairing, may lose the last
commits on power loss, which would let the consumer commit offsets past lost rows.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(
    url: str,
    *,
    echo: bool = False,
    connect_timeout_s: int = 5,
    statement_timeout_s: float | None = None,
) -> Engine:
    parsed = make_url(url)
    # Texts are sensitive: statement parameters never appear in database error messages.
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True, "hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Several processes (service, API, CLI) share one file: wait for locks, don't fail.
        kwargs["connect_args"] = {"timeout": 30}
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    kwargs["pool_size"] = 5
    connect_args: dict[str, Any] = {"connect_timeout": connect_timeout_s}
    if statement_timeout_s is not None:
        ms = max(1, int(statement_timeout_s * 1000))
        connect_args["options"] = f"-c statement_timeout={ms} -c lock_timeout={ms}"
    kwargs["connect_args"] = connect_args
    return create_engine(url, **kwargs)
