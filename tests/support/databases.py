"""Throwaway PostgreSQL databases for tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL


@contextlib.contextmanager
def temporary_database(admin_url: URL, name: str, template: str | None = None) -> Iterator[str]:
    """CREATE DATABASE ``name`` (a copy of ``template`` if given) through ``admin_url``;
    DROP it afterwards."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        yield admin_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
