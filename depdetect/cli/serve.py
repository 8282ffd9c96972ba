"""`depdetect serve`: run the streaming classifier service."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from depdetect.cli.common import fail, state_settings


def serve(
    ctx: typer.Context,
    bundle: Annotated[
        Path | None, typer.Option(help="Model bundle directory (else DEPDETECT_MODEL__BUNDLE_PATH)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes in the consumer group")] = 1,
    host: Annotated[str | None, typer.Option(help="Health/metrics bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Health/metrics port")] = None,
) -> None:
    """Consume texts, classify them, store flags and emit review events (until SIGTERM)."""
    settings = state_settings(ctx)
    if bundle is not None:
        settings.model.bundle_path = bundle
    if settings.model.bundle_path is None:
        raise fail("no model bundle: pass --bundle or set DEPDETECT_MODEL__BUNDLE_PATH")
    from schemas.bundle import read_manifest
    from schemas.errors import BundleError

    try:
        read_manifest(settings.model.bundle_path)
    except BundleError as exc:
        raise fail(str(exc)) from exc
    bind_host = host or settings.service.health_host
    bind_port = port or settings.service.health_port
    if workers > 1:
        # faststream's runner forks workers that share the port; settings travel by env.
        os.environ["DEPDETECT_MODEL__BUNDLE_PATH"] = str(settings.model.bundle_path)
        faststream = Path(sys.executable).parent / "faststream"
        os.execv(
            str(faststream),
            [
                str(faststream),
                "run",
                "services.classifier.app:create_app",
                "--factory",
                "--workers",
                str(workers),
                "--host",
                bind_host,
                "--port",
                str(bind_port),
            ],
        )
    from services.classifier.app import create_app

    app = create_app(settings)
    asyncio.run(
        app.run(
            log_level=logging.getLevelName(settings.log_level.upper()),
            run_extra_options={"host": bind_host, "port": bind_port},
        )
    )
