"""The Message Batches API through the official SDK: create, retrieve, results, list.

Retrieve, results and list are idempotent: the SDK's own retries (`max_retries`) cover
them. Create is not: a timeout after the server accepted the batch, retried blindly,
would pay twice. So create runs with SDK retries off and retries only on answers that
say the batch was not created (429 rate limit, 503/529 overloaded), with tenacity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import anthropic
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential

from training.generate.config import Timing

#: Answers that mean "not created, try later".
_CAPACITY_STATUSES = frozenset({429, 503, 529})


def make_client(
    api_key: str,
    *,
    max_retries: int,
    base_url: str | None = None,
    http_client: Any = None,
) -> anthropic.Anthropic:
    """The SDK client; tests pass an `http_client` whose transport replays responses."""
    return anthropic.Anthropic(
        api_key=api_key, max_retries=max_retries, base_url=base_url, http_client=http_client
    )


def _is_capacity_error(exc: BaseException) -> bool:
    return isinstance(exc, anthropic.APIStatusError) and exc.status_code in _CAPACITY_STATUSES


def _retry_after(exc: BaseException | None) -> float:
    if not isinstance(exc, anthropic.APIStatusError):
        return 0.0
    try:
        return float(exc.response.headers.get("retry-after", "0"))
    except ValueError:
        return 0.0


class BatchApi:
    def __init__(
        self,
        client: anthropic.Anthropic,
        timing: Timing,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._timing = timing
        self._sleep = sleep
        self._exponential = wait_exponential(
            multiplier=timing.create_wait_min_s, max=timing.create_wait_max_s
        )

    def _create_wait(self, state: RetryCallState) -> float:
        # The server's Retry-After wins when it asks for longer than our back-off.
        exc = state.outcome.exception() if state.outcome else None
        return min(max(self._exponential(state), _retry_after(exc)), self._timing.create_wait_max_s)

    def create(self, requests: list[dict[str, Any]]) -> MessageBatch:
        retrying = Retrying(
            retry=retry_if_exception(_is_capacity_error),
            wait=self._create_wait,
            stop=stop_after_attempt(self._timing.create_attempts),
            sleep=self._sleep,
            reraise=True,
        )
        client = self._client.with_options(max_retries=0)
        for attempt in retrying:
            with attempt:
                return client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        raise AssertionError("unreachable: tenacity reraises the last error")

    def retrieve(self, batch_id: str) -> MessageBatch:
        return self._client.messages.batches.retrieve(batch_id)

    def results(self, batch_id: str) -> Iterator[MessageBatchIndividualResponse]:
        """Result lines in whatever order the API streams them."""
        yield from self._client.messages.batches.results(batch_id)

    def created_since(self, since: datetime) -> list[MessageBatch]:
        """Batches created at or after `since` (the list is newest first)."""
        found: list[MessageBatch] = []
        for batch in self._client.messages.batches.list(limit=100):
            if batch.created_at < since:
                break
            found.append(batch)
        return found
