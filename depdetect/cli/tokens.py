"""`depdetect tokens …`: bearer tokens for the results API (stored hashed)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from depdetect.cli.common import command_group, fail, state_settings

app = command_group(help="Create, list and revoke results-API tokens.")


def _roles() -> str:
    from services.api.security.tokens import Role

    return ", ".join(r.value for r in Role)


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(help="Who holds it; a moderator's decisions are recorded under this name."),
    ],
    role: Annotated[str, typer.Option(help="moderator, analyst or admin.")],
) -> None:
    """Create a token and print it once: only its hash is stored."""
    from services.api.security.tokens import Role, TokenError, create_token
    from services.results_query.database import open_sessions

    try:
        chosen = Role(role)
    except ValueError as exc:
        raise fail(f"--role must be one of {_roles()}, not {role!r}") from exc
    try:
        with open_sessions(state_settings(ctx).database) as sessions, sessions.begin() as session:
            issued = create_token(session=session, name=name, role=chosen)
    except TokenError as exc:
        raise fail(str(exc)) from exc
    typer.secho(
        f"token {issued.row.id} for {name} ({chosen.value}); store it now, it is not shown again:",
        err=True,
    )
    typer.echo(issued.secret)


@app.command()
def revoke(
    ctx: typer.Context,
    name_or_id: Annotated[str, typer.Argument(help="A token id, or a name (all its tokens).")],
) -> None:
    """Revoke tokens; requests with them get 401 from then on."""
    from services.api.security.tokens import TokenError, revoke_tokens
    from services.results_query.database import open_sessions

    try:
        with open_sessions(state_settings(ctx).database) as sessions, sessions.begin() as session:
            rows = revoke_tokens(session=session, name_or_id=name_or_id)
    except TokenError as exc:
        raise fail(str(exc)) from exc
    for row in rows:
        typer.echo(f"revoked token {row.id} ({row.name}, {row.role})")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tokens (never their secrets or hashes)."""
    from services.api.security.tokens import list_tokens
    from services.results_query.database import open_sessions

    with open_sessions(state_settings(ctx).database) as sessions, sessions() as session:
        rows = list_tokens(session=session, include_revoked=include_revoked)
    records = [
        {
            "id": r.id,
            "name": r.name,
            "role": r.role,
            "created_at": r.created_at.isoformat(),
            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
        }
        for r in rows
    ]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    table = Table(title="API tokens")
    for column in ("id", "name", "role", "created", "revoked"):
        table.add_column(column)
    for rec in records:
        table.add_row(
            *(str(rec[k] or "") for k in ("id", "name", "role", "created_at", "revoked_at"))
        )
    Console().print(table)
