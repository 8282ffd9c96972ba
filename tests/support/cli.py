"""The ``depdetect train`` commands as a Typer app for CliRunner, with settings built
fresh from the environment (a test's monkeypatched variables, no .env file)."""

from __future__ import annotations

import typer


def train_cli() -> typer.Typer:
    from depdetect.cli import train
    from depdetect.settings import Settings

    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = Settings(_env_file=None)  # type: ignore[call-arg]

    app.add_typer(train.app, name="train")
    return app
