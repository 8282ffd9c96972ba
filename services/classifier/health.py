"""`/health`: liveness and readiness (broker and database reachable, model loaded, and
the consumer making progress)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from faststream.asgi import AsgiResponse, get

Check = Callable[[], Awaitable[bool]]


class Unready(Exception):
    """Raised by a check to say why it is not ready; the message is shown in /health, so
    it must never carry record data."""


class Progress:
    """Stall detection: records are waiting (a batch in flight or failing, or lag seen)
    and no batch has completed for longer than ``stall_after_s``.

    ``waiting_since`` is when the consumer last had nothing left to do or last committed;
    an idle consumer (no lag) is never stalled.
    """

    def __init__(
        self, stall_after_s: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.waiting_since: float | None = None

    def batch_started(self) -> None:
        if self.waiting_since is None:
            self.waiting_since = self.clock()

    def lag_seen(self, lag: int) -> None:
        if lag > 0 and self.waiting_since is None:
            self.waiting_since = self.clock()

    def batch_committed(self, lag: int) -> None:
        # Progress made now; still waiting if records remain behind the high watermark.
        self.waiting_since = self.clock() if lag > 0 else None

    def stalled(self) -> bool:
        return (
            self.waiting_since is not None
            and self.clock() - self.waiting_since > self.stall_after_s
        )


def make_health_handler(checks: dict[str, Check]):  # type: ignore[no-untyped-def]
    @get(include_in_schema=False)
    async def health(scope: object) -> AsgiResponse:
        results = {}
        reasons = {}
        for name, check in checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), 3))
            except Unready as exc:
                results[name] = False
                reasons[name] = str(exc)
            except Exception:  # a failing probe means "not ready", never a 500
                results[name] = False
        ready = all(results.values())
        answer: dict[str, object] = {"live": True, "ready": ready, "checks": results}
        if reasons:
            answer["reasons"] = reasons
        body = json.dumps(answer).encode()
        return AsgiResponse(
            body, status_code=200 if ready else 503, headers={"content-type": "application/json"}
        )

    return health
