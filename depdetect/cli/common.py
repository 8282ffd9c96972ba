"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import subprocess
from typing import Any

import typer
from typer.core import TyperGroup

from depdetect.settings import REPO_ROOT, Settings


def state_settings(ctx: typer.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def run_deploy_script(relative: str, *args: str) -> None:
    """Run a script from deploy/ (a checkout is required for local infrastructure)."""
    script = REPO_ROOT / "deploy" / relative
    if not script.exists():
        raise fail(f"{script} not found: local infrastructure commands need a source checkout")
    result = subprocess.run(["bash", str(script), *args], check=False)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)


class WrappedHelpGroup(TyperGroup):
    """A command group whose command list shows each command's whole first sentence,
    wrapped to the terminal, where click would cut it off with '...'."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def command_group(**options: Any) -> typer.Typer:
    """Every `depdetect` group is built here, so that their help reads alike."""
    # Plain help (no rich panels): rich cuts long option names and descriptions at 80
    # columns, click's formatter wraps them.
    return typer.Typer(cls=WrappedHelpGroup, no_args_is_help=True, rich_markup_mode=None, **options)
