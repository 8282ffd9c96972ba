"""What the service loads before it consumes: nothing slow is left for the first batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from faststream import TestApp

from depdetect.settings import Settings
from schemas import text
from services.classifier.app import create_app
from services.classifier.batch import BatchOutcome, BatchProcessor
from tests.service.harness import one_batch_backlog, stored_ids, wait_for

pytestmark = [pytest.mark.kafka]


async def test_the_language_detector_is_loaded_before_the_first_batch(
    service_settings: Callable[..., Settings],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Texts without a declared language are detected in the batch; py3langid's model
    (loaded on first use, about 0.4 s) must already be in memory when it starts."""
    text._identifier.cache_clear()
    loaded: list[int] = []
    real = BatchProcessor.process

    async def noting(self: BatchProcessor, records: Sequence[Any]) -> BatchOutcome:
        loaded.append(text._identifier.cache_info().currsize)
        return await real(self, records)

    monkeypatch.setattr(BatchProcessor, "process", noting)
    settings = service_settings(sqlite_url)
    sent = await one_batch_backlog(settings, "w-", 6, wait_ms=500)
    async with TestApp(create_app(settings)):
        await wait_for(lambda: len(stored_ids(sqlite_url)) >= len(sent), timeout=60, what="rows")
    assert loaded and loaded[0] == 1
