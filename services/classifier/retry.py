"""Retry blocking dependency calls (the database) with back-off until they work or we stop."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from schemas.errors import TransientError
from services.classifier.failure_policy import describe
from services.classifier.metrics import ServiceMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class Retrier:
    """Runs ``fn`` in a thread; on ``TransientError`` waits (0.5 s … max_wait) and retries.

    While it waits, the consumer fetches nothing: consumption pauses by itself and
    resumes once the dependency answers. A shutdown request ends the wait, and so does
    ``retry_for_s``: the batch then fails as a whole (transient: rewound and fetched
    again after a pause), so that the consumer polls in time to stay in its group.

    ``attempt_timeout_s`` bounds each attempt: a database that hangs (accepts the
    connection, never answers) counts as unavailable and the call is retried, instead of
    blocking the batch forever. The thread of a timed-out attempt cannot be killed; it
    ends when the driver gives up (statement_timeout, a dropped connection), and its
    work, if it lands late, is harmless because every write is idempotent.
    """

    def __init__(
        self,
        stopping: asyncio.Event,
        metrics: ServiceMetrics,
        max_wait: float = 10.0,
        attempt_timeout_s: float | None = None,
        retry_for_s: float | None = None,
    ):
        self.stopping = stopping
        self.metrics = metrics
        self.max_wait = max_wait
        self.attempt_timeout_s = attempt_timeout_s
        self.retry_for_s = retry_for_s
        # Its own threads: calls stuck on a hung database must not starve the shared
        # default pool that scoring uses.
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="depdetect-db")

    def _stop(self, state: RetryCallState) -> bool:
        if self.stopping.is_set():
            return True
        elapsed = state.seconds_since_start or 0.0
        return self.retry_for_s is not None and elapsed >= self.retry_for_s

    def _log(self, state: RetryCallState) -> None:
        self.metrics.transient_errors.labels("database").inc()
        self.metrics.retries.labels("database").inc()
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "database unavailable (attempt %d), retrying: %s",
            state.attempt_number,
            describe(exc) if exc else "?",
        )

    async def _attempt(self, fn: Callable[..., T], *args: Any) -> T:
        call = asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(fn, *args)
        )
        if self.attempt_timeout_s is None:
            return await call
        try:
            return await asyncio.wait_for(call, self.attempt_timeout_s)
        except TimeoutError as exc:
            raise TransientError(
                f"database call took longer than {self.attempt_timeout_s:.0f}s"
            ) from exc

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientError),
            wait=wait_exponential_jitter(multiplier=0.5, max=self.max_wait),
            stop=self._stop,
            before_sleep=self._log,
            reraise=True,
        )
        return await retrying(self._attempt, fn, *args)
