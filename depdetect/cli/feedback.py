"""`depdetect feedback export`: moderators' decisions as labelled training rows."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from depdetect.cli.common import command_group, fail, state_settings
from schemas.messages import describe_validation_error

app = command_group(help="Feed moderators' decisions back into training.")


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; stdout if omitted.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Classified at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Classified before (ISO 8601).")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code.")] = None,
    model_version: Annotated[str | None, typer.Option(help="Only flags of this model.")] = None,
) -> None:
    """Write decided texts as `text|label|language|source|origin` (label 1 = confirmed
    indicators, 0 = not indicators; escalated results are left out), the table format the
    training pipeline's prepare step reads."""
    from services.results_query.database import open_sessions
    from services.results_query.feedback import feedback_rows, write_feedback_table
    from services.results_query.filters import ResultScope

    values = {"since": since, "until": until, "language": language, "model_version": model_version}
    try:
        scope = ResultScope.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise fail(describe_validation_error(exc)) from exc
    with open_sessions(state_settings(ctx).database) as sessions, sessions() as session:
        rows = feedback_rows(session=session, scope=scope)
        if output is None:
            written = write_feedback_table(rows, sys.stdout)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            # Written beside the target and renamed: a failed export never leaves half a table.
            partial = output.with_name(output.name + ".partial")
            with partial.open("w", encoding="utf-8", newline="") as stream:
                written = write_feedback_table(rows, stream)
            partial.replace(output)
    typer.secho(f"exported {written} labelled rows" + (f" to {output}" if output else ""), err=True)
