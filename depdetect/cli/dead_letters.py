"""`depdetect dead-letters …`: look at dead letters and replay them once fixable."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from depdetect.cli.common import command_group, state_settings

app = command_group(help="Inspect and replay dead-lettered records.")

ReasonOpt = Annotated[
    str | None, typer.Option(help="Only letters whose reason contains this (case-insensitive)")
]
PartitionOpt = Annotated[int | None, typer.Option(help="Only this dead-letter partition")]
FromOpt = Annotated[int | None, typer.Option(help="Dead-letter topic offset to start at")]
ToOpt = Annotated[int | None, typer.Option(help="Dead-letter topic offset to end at (included)")]


@app.command("replay")
def replay_cmd(
    ctx: typer.Context,
    reason: ReasonOpt = None,
    partition: PartitionOpt = None,
    from_offset: FromOpt = None,
    to_offset: ToOpt = None,
    topic: Annotated[
        str | None, typer.Option(help="Publish here instead of each letter's source topic")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Publish (without it: a dry run that only counts)")
    ] = False,
) -> None:
    """Re-publish the original bytes of matching dead letters to their source topic.

    A dry run unless --yes. Truncated letters (their payload was cut to fit the broker)
    are never replayed. A record that still fails is dead-lettered again, not lost.
    """
    from services.classifier.dead_letters import plan_replay, replay

    kafka = state_settings(ctx).kafka
    plan = asyncio.run(
        plan_replay(
            kafka,
            reason=reason,
            partition=partition,
            from_offset=from_offset,
            to_offset=to_offset,
        )
    )
    typer.echo(
        f"{len(plan.chosen)} of {plan.considered} dead letters match "
        f"({len(plan.truncated)} truncated and not replayable, {plan.unreadable} unreadable)"
    )
    for text, count in plan.reasons().most_common(20):
        typer.echo(f"  {count:6d}  {text[:150]}")
    if not yes:
        typer.echo("dry run: nothing published (add --yes to replay)")
        return
    sent = asyncio.run(replay(kafka, plan, topic=topic))
    typer.echo(f"replayed {sent} records")
