"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import subprocess

import typer

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
