"""`/health`: liveness and readiness (broker and database reachable, model loaded)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from faststream.asgi import AsgiResponse, get

Check = Callable[[], Awaitable[bool]]


def make_health_handler(checks: dict[str, Check]):  # type: ignore[no-untyped-def]
    @get(include_in_schema=False)
    async def health(scope: object) -> AsgiResponse:
        results = {}
        for name, check in checks.items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), 3))
            except Exception:  # a failing probe means "not ready", never a 500
                results[name] = False
        ready = all(results.values())
        body = json.dumps({"live": True, "ready": ready, "checks": results}).encode()
        return AsgiResponse(
            body, status_code=200 if ready else 503, headers={"content-type": "application/json"}
        )

    return health
