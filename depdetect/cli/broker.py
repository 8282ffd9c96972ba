"""`depdetect broker …`: the local Kafka broker (from Maven Central, KRaft mode) and topics."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from depdetect.cli.common import command_group, fail, run_deploy_script, state_settings
from schemas.errors import TransientError

app = command_group(help="Run a local Kafka broker and create the project's topics.")

KAFKA = "kafka/kafka.sh"


@app.command()
def start(
    nodes: Annotated[int, typer.Option(help="1 (single node) or 3 (fault-test cluster)")] = 1,
    wait: Annotated[bool, typer.Option(help="Block until the broker is ready")] = True,
) -> None:
    """Fetch the broker jars (cached) and start Kafka on loopback."""
    if nodes not in (1, 3):
        raise fail("--nodes must be 1 or 3")
    run_deploy_script(KAFKA, "start", "--nodes", str(nodes))
    if wait:
        run_deploy_script(KAFKA, "wait")


@app.command("wait")
def wait_ready(timeout: Annotated[int, typer.Option(help="Seconds")] = 120) -> None:
    """Wait until every started node is ready."""
    run_deploy_script(KAFKA, "wait", str(timeout))


@app.command()
def stop() -> None:
    """Stop the local broker gracefully."""
    run_deploy_script(KAFKA, "stop")


@app.command()
def kill(
    node: Annotated[int | None, typer.Argument(help="Node id; all when omitted")] = None,
) -> None:
    """Hard-kill broker node(s) (for fault tests)."""
    run_deploy_script(KAFKA, "kill", *([str(node)] if node is not None else []))


@app.command()
def status() -> None:
    """Show which local broker nodes run."""
    run_deploy_script(KAFKA, "status")


@app.command()
def topics(
    ctx: typer.Context,
    partitions: Annotated[int | None, typer.Option(help="Defaults to the setting")] = None,
) -> None:
    """Create the project's topics on the configured broker (existing ones are kept)."""
    from services.kafka.admin import ensure_topics, project_topics

    settings = state_settings(ctx)
    try:
        created = asyncio.run(ensure_topics(settings.kafka, partitions=partitions))
    except TransientError as exc:
        raise fail(str(exc)) from exc
    for topic in project_topics(settings.kafka):
        typer.echo(f"{topic}: {'created' if topic in created else 'exists'}")
