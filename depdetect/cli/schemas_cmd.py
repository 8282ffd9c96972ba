"""`depdetect schemas …`: the JSON Schema files that producers in other languages use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from depdetect.cli.common import command_group

app = command_group(help="Message contracts as JSON Schema.")


@app.command()
def export(
    directory: Annotated[Path | None, typer.Option(help="Defaults to schemas/json")] = None,
) -> None:
    """Write one <kind>.schema.json per message contract."""
    from schemas.jsonschema import JSON_SCHEMA_DIR
    from schemas.jsonschema import export as do_export

    for path in do_export(directory or JSON_SCHEMA_DIR):
        typer.echo(str(path))


@app.command()
def validate(
    kind: Annotated[
        str,
        typer.Argument(help="The contract's kind (`depdetect schemas export` lists them)"),
    ],
    file: Annotated[typer.FileText, typer.Argument(help="JSON file, or - for stdin")],
) -> None:
    """Check one JSON message against its contract; print the problem and exit 1 if any."""
    from depdetect.cli.common import fail
    from schemas.errors import ContractError
    from schemas.messages import MESSAGE_MODELS, decode

    models = {m.kind: m for m in MESSAGE_MODELS}
    if kind not in models:
        raise fail(f"unknown kind {kind!r}; choose one of {sorted(models)}")
    try:
        decode(models[kind], file.read())
    except ContractError as exc:
        raise fail(str(exc)) from exc
    typer.echo("valid")


@app.command()
def asyncapi() -> None:
    """Write the classifier service's AsyncAPI document (services/classifier/asyncapi.yaml)."""
    from services.classifier.asyncapi import export as export_asyncapi

    typer.echo(str(export_asyncapi()))
