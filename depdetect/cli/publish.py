"""`depdetect publish`: send texts from a file or stdin to the input topic."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from depdetect.cli.common import fail, state_settings
from schemas.errors import ContractError, TransientError


def publish(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="JSON lines, CSV (with a 'text' column) or text; stdin if omitted"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, jsonl, csv or text")] = "auto",
    source: Annotated[
        str | None, typer.Option(help="Default source for records without one")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Defaults to the first input topic")] = None,
) -> None:
    """Publish texts (each validated against the contract first) with keys, showing progress."""
    from pydantic import ValidationError

    from schemas.messages import SubmittedText, describe_validation_error
    from services.publisher.client import TextPublisher
    from services.publisher.readers import guess_format, iter_records, with_message_id

    settings = state_settings(ctx)
    chosen = guess_format(file) if fmt == "auto" else fmt
    if chosen not in ("jsonl", "csv", "text"):
        raise fail(f"--format must be auto, jsonl, csv or text, not {fmt!r}")
    stream = file.open(encoding="utf-8") if file else sys.stdin
    try:
        records = list(iter_records(stream, chosen))  # type: ignore[arg-type]
        messages = []
        for n, record in enumerate(records, start=1):
            if source and "source" not in record:
                record["source"] = source
            try:
                messages.append(
                    SubmittedText.model_validate(
                        with_message_id(record),
                        context={"max_text_chars": settings.contract.max_text_chars},
                    )
                )
            except ValidationError as exc:
                raise ContractError(
                    f"record {n}: {describe_validation_error(exc)} (nothing was published)"
                ) from exc
    except ContractError as exc:
        raise fail(str(exc)) from exc
    finally:
        if file:
            stream.close()

    async def _send() -> None:
        async with TextPublisher(settings.kafka, topic=topic) as pub:
            with Progress(transient=not sys.stderr.isatty()) as progress:
                task = progress.add_task(f"publishing to {pub.topic}", total=len(messages))
                async for sent in pub.publish_many(messages):
                    progress.update(task, completed=sent)

    try:
        asyncio.run(_send())
    except (TransientError, OSError) as exc:
        raise fail(f"publishing failed: {exc}") from exc
    typer.echo(f"published {len(messages)} texts")
