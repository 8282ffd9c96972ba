"""Retry blocking dependency calls (the database) with back-off until they work or we stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from schemas.errors import TransientError
from services.classifier.metrics import ServiceMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class Retrier:
    """Runs ``fn`` in a thread; on ``TransientError`` waits (0.5 s … max_wait) and retries.

    While it waits, the consumer fetches nothing: consumption pauses by itself and
    resumes once the dependency answers. A shutdown request ends the wait.
    """

    def __init__(self, stopping: asyncio.Event, metrics: ServiceMetrics, max_wait: float = 10.0):
        self.stopping = stopping
        self.metrics = metrics
        self.max_wait = max_wait

    def _stop(self, state: RetryCallState) -> bool:
        return self.stopping.is_set()

    def _log(self, state: RetryCallState) -> None:
        self.metrics.transient_errors.labels("database").inc()
        exc = state.outcome.exception() if state.outcome else None
        log.warning("database unavailable (attempt %d), retrying: %s", state.attempt_number, exc)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_exponential_jitter(multiplier=0.5, max=self.max_wait),
            stop=self._stop,
            before_sleep=self._log,
            reraise=True,
        )
        return await retrying(asyncio.to_thread, fn, *args)
