"""Migrations create the schema on SQLite and on the real PostgreSQL; a rerun is a no-op."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas.migrate import current_revision, head_revision, upgrade
from schemas.tables import Base, ResultRow


def _row(message_id: str) -> ResultRow:
    now = datetime.now(UTC)
    return ResultRow(
        message_id=message_id,
        score=0.9,
        label="indicators",
        flagged=True,
        threshold=0.5,
        model_version="m-x",
        language="en",
        source="s",
        submitted_at=now,
        classified_at=now,
    )


def _columns(engine: Engine) -> list[tuple[str, str, bool]]:
    return [
        (c["name"], str(c["type"]), c["nullable"])
        for table in sorted(Base.metadata.tables)
        for c in inspect(engine).get_columns(table)
    ]


def test_migrations_create_schema_and_rerun_is_noop(database_url: str, unique: str) -> None:
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with Session(engine) as session:
            session.add(_row(f"same-{unique}"))
            session.commit()
        before = _columns(engine)

        upgrade(database_url)  # second run

        assert current_revision(database_url) == head_revision()
        assert _columns(engine) == before
        with engine.connect() as conn:
            assert conn.execute(text("select count(*) from classification_results")).scalar() >= 1
    finally:
        engine.dispose()


def test_message_id_is_unique_in_the_database(database_url: str, unique: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            session.add(_row(f"dup-{unique}"))
            session.commit()
            session.add(_row(f"dup-{unique}"))
            with pytest.raises(IntegrityError):
                session.commit()
    finally:
        engine.dispose()


def test_schema_from_migrations_matches_the_models(sqlite_url: str) -> None:
    """Autogenerate finds nothing to do: the migrations and schemas/tables.py agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    upgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
