"""The app factory. Nothing is built at import: engine, sessions, the Kafka producer
and the outbox relay exist only between the lifespan's start and end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from depdetect.settings import Settings
from services.api.console.pages import install_console
from services.api.errors import install_error_handlers
from services.api.outbox.relay import DecisionRelay
from services.api.outbox.sink import DecisionSink, KafkaDecisionSink
from services.api.resources import ApiResources
from services.api.routes import aggregates, decisions, health, results
from services.results_query.database import make_engine, make_sessions

DESCRIPTION = """Moderators review flagged texts and record decisions; analysts read figures.

Every request needs a bearer token (`depdetect tokens create NAME --role ROLE`).
Roles: **moderator** reads results (with texts) and decides; **analyst** reads
aggregates only, never a text; **admin** may do both and decide on others' behalf.

This is a screening support tool, never a diagnosis: a person reviews every flag.
"""


def create_app(
    settings: Settings,
    *,
    decision_sink: DecisionSink | None = None,
    relay_interval_s: float = 5.0,
) -> FastAPI:
    """``decision_sink`` replaces the Kafka producer (tests use one that fails)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database)
        sessions = make_sessions(engine)
        sink = decision_sink or KafkaDecisionSink(settings.kafka)
        relay = DecisionRelay(sessions=sessions, sink=sink, interval_s=relay_interval_s)
        app.state.resources = ApiResources(settings=settings, sessions=sessions, relay=relay)
        task = asyncio.create_task(relay.run(), name="decision-relay")
        try:
            yield
        finally:
            relay.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sink.close()
            engine.dispose()

    app = FastAPI(
        title="depdetect results API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Every request needs a token, documentation included: the document is in the
        # repository (services/api/openapi.json, `depdetect api openapi`).
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    for module in (health, results, decisions, aggregates):
        app.include_router(module.router)
    # The review console and the dashboard (web pages; not in the OpenAPI document).
    install_console(app)
    return app
