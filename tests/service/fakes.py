"""What the in-process batch tests share: a broker record, a ``BatchProcessor`` on a real
database with a fake model and broker, and a database rule the contract does not know."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text

from depdetect.settings import Settings, StoreUnflagged
from schemas.migrate import upgrade
from services.classifier.batch import BatchProcessor, Publish
from services.classifier.metrics import ServiceMetrics
from services.classifier.retry import Retrier
from services.storage.engine import make_engine
from services.storage.results import ResultStore


@dataclass
class Record:
    value: bytes | None
    offset: int
    topic: str = "in"
    partition: int = 0
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0


def batch_processor(
    url: str, *, runner: Any, publish: Publish, attempt_timeout_s: float | None = None
) -> BatchProcessor:
    """On the migrated database at ``url``, storing unflagged scores; retries wait 50 ms."""
    upgrade(url)
    settings = Settings(
        _env_file=None,
        database={"url": url},  # type: ignore[call-arg]
        storage={"store_unflagged": StoreUnflagged.SCORE},
    )
    metrics = ServiceMetrics()
    return BatchProcessor(
        settings=settings,
        runner=runner,
        store=ResultStore(make_engine(url)),
        publish=publish,
        retry=Retrier(asyncio.Event(), metrics, 0.05, attempt_timeout_s=attempt_timeout_s),
        metrics=metrics,
    )


def refuse_source(url: str, source: str) -> None:
    """A database rule the contract does not know: rows from ``source`` are refused."""
    engine = create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "ALTER TABLE classification_results ADD CONSTRAINT no_refused "
                    f"CHECK (source <> '{source}')"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER no_refused BEFORE INSERT ON classification_results "
                    f"WHEN NEW.source = '{source}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    engine.dispose()
