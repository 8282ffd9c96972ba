"""`depdetect api …`: serve the results API; write its OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from depdetect.cli.common import command_group, fail, state_settings

app = command_group(help="The results API for moderators and analysts.")


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Defaults to api.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Defaults to api.port.")] = None,
) -> None:
    """Serve the API (run `depdetect db migrate` first; create tokens with `depdetect tokens`)."""
    import uvicorn

    from schemas.migrate import current_revision, head_revision
    from services.api.app import create_app

    settings = state_settings(ctx)
    current = current_revision(settings.database.url)
    if current != head_revision():
        raise fail(
            f"the database is at revision {current or 'empty'}, not "
            f"{head_revision()}: run `depdetect db migrate` first"
        )
    bind_host, bind_port = host or settings.api.host, port or settings.api.port
    shown_host = "127.0.0.1" if bind_host in ("0.0.0.0", "::") else bind_host
    typer.echo(
        f"review console (moderators) and dashboard (analysts): "
        f"http://{shown_host}:{bind_port}/console; sign in with a token from "
        "`depdetect tokens create NAME --role moderator|analyst`",
        err=True,
    )
    uvicorn.run(
        create_app(settings),
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level.lower(),
    )


@app.command()
def openapi(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Defaults to services/api/openapi.json in the checkout."
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Fail if the file differs from the app instead of writing it."
        ),
    ] = False,
) -> None:
    """Write the OpenAPI document of the API into the repository."""
    from services.api.openapi import DOCUMENT, render_openapi

    target = output or DOCUMENT
    text = render_openapi()
    if check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            raise fail(f"{target} is out of date: run `depdetect api openapi`")
        typer.echo(f"{target} is current")
        return
    target.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {target}")
