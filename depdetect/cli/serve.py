"""`depdetect serve`: run the streaming classifier service."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from depdetect.cli.common import fail, state_settings

if TYPE_CHECKING:
    import uvicorn


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
        if settings.model.intra_op_threads is None:
            from services.inference.runner import usable_cores

            # The workers share this process's cores: each takes its part, not all of them.
            threads = max(1, usable_cores() // workers)
            os.environ["DEPDETECT_MODEL__INTRA_OP_THREADS"] = str(threads)
        faststream = Path(sys.executable).parent / "faststream"
        os.execv(
            str(faststream),
            [
                str(faststream),
                "run",
                "services.classifier.app:create_app_from_env",
                "--factory",
                "--workers",
                str(workers),
                "--host",
                bind_host,
                "--port",
                str(bind_port),
            ],
        )
    import uvicorn

    from services.classifier.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=bind_host,
        port=bind_port,
        log_level=logging.getLevelName(settings.log_level.upper()),
        access_log=False,
        log_config=None,  # one log format for everything: ours (depdetect.logs)
    )
    asyncio.run(_clean_exit_server(config).serve())
    # Reaching here means a clean stop (SIGTERM/SIGINT after the shutdown ran): exit 0.


def _clean_exit_server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn's server, except that SIGTERM is a normal stop: after the graceful
    shutdown it does not re-raise the signal, so the process exits 0."""
    import uvicorn

    class CleanExitServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            if sig in (signal.SIGTERM, signal.SIGINT) and sig in self._captured_signals:
                self._captured_signals.remove(sig)

    return CleanExitServer(config)
