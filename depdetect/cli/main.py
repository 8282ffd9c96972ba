"""`depdetect`: one command, grouped by what users do.

Heavy imports (aiokafka, onnxruntime, torch) happen inside the commands that need
them, so `depdetect --help` is instant and the serving install never needs torch.
"""

from __future__ import annotations

import typer

from depdetect.cli import (
    api,
    boundary,
    broker,
    database,
    dead_letters,
    demo,
    feedback,
    publish,
    results,
    schemas_cmd,
    serve,
    tokens,
    train,
)
from depdetect.cli import generate as generate_cli
from depdetect.cli.common import command_group, state_settings
from depdetect.logs import configure_logging
from depdetect.settings import load_settings

app = command_group(
    name="depdetect",
    help="Screen text streams for depression indicators, with a person reviewing every flag. "
    "A support tool, never a diagnosis.",
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Settings come from DEPDETECT_* environment variables (see `depdetect config`)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


@app.command("config")
def show_config(ctx: typer.Context) -> None:
    """Print the effective settings (secrets masked) as JSON."""
    typer.echo(state_settings(ctx).model_dump_json(indent=2))


app.command("publish")(publish.publish)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.add_typer(results.app, name="results")
app.add_typer(feedback.app, name="feedback")
app.add_typer(tokens.app, name="tokens")
app.add_typer(api.app, name="api")
train.app.add_typer(generate_cli.app, name="generate", help="Generate labelled texts with Claude.")
app.add_typer(train.app, name="train")
app.command("evaluate")(train.evaluate)
app.add_typer(broker.app, name="broker")
app.add_typer(database.app, name="db")
app.add_typer(schemas_cmd.app, name="schemas")
app.add_typer(dead_letters.app, name="dead-letters")


def main() -> None:
    """The console script: the app behind the one error boundary."""
    boundary.run(app)


if __name__ == "__main__":  # pragma: no cover
    main()
