"""`depdetect db …`: migrations, and a local PostgreSQL for those who want one."""

from __future__ import annotations

import typer

from depdetect.cli.common import command_group, run_deploy_script, state_settings

app = command_group(help="Database schema and a local PostgreSQL.")

POSTGRES = "postgres/postgres.sh"


@app.command()
def migrate(ctx: typer.Context) -> None:
    """Create or upgrade the schema at DEPDETECT_DATABASE__URL (a no-op when current)."""
    from schemas.migrate import current_revision, head_revision, upgrade

    url = state_settings(ctx).database.url
    before = current_revision(url)
    upgrade(url)
    after = current_revision(url)
    verb = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    typer.echo(f"database {verb} revision {after} (head {head_revision()})")


@app.command()
def current(ctx: typer.Context) -> None:
    """Print the database's schema revision."""
    from schemas.migrate import current_revision

    typer.echo(current_revision(state_settings(ctx).database.url) or "empty")


@app.command("install-postgres")
def install_postgres() -> None:
    """Install PostgreSQL from Debian's packages (when missing)."""
    run_deploy_script(POSTGRES, "install")


@app.command("start-postgres")
def start_postgres() -> None:
    """Start a private local PostgreSQL cluster and print its URL."""
    run_deploy_script(POSTGRES, "start")
    run_deploy_script(POSTGRES, "url")


@app.command("stop-postgres")
def stop_postgres() -> None:
    """Stop the local PostgreSQL cluster."""
    run_deploy_script(POSTGRES, "stop")
