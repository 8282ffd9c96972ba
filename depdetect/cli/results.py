"""`depdetect results …`: the results API's queries on the command line.

Talks to the database directly (whoever holds its URL is trusted, as for `db migrate`);
`--json` prints exactly the API's response bodies.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Annotated, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from depdetect.cli.common import command_group, fail, state_settings
from depdetect.settings import Settings, StoreUnflagged
from schemas.errors import DepdetectError, TransientError
from schemas.messages import Decision, describe_validation_error, utcnow

M = TypeVar("M", bound=BaseModel)

app = command_group(help="List, inspect and decide on results; figures; retention.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (the API's response body).")]
SinceOpt = Annotated[str | None, typer.Option(help="Classified at or after (ISO 8601, UTC).")]
UntilOpt = Annotated[str | None, typer.Option(help="Classified before (ISO 8601, UTC).")]
LanguageOpt = Annotated[str | None, typer.Option(help="ISO 639-1 code.")]
SourceOpt = Annotated[str | None, typer.Option(help="Platform or channel.")]
ModelOpt = Annotated[str | None, typer.Option("--model-version", help="Model version.")]


def _print_json(model: BaseModel) -> None:
    typer.echo(model.model_dump_json(indent=2))


def _short(text: str | None, width: int = 60) -> str:
    if text is None:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _validated(model: type[M], **values: object) -> M:
    try:
        return model.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise fail(describe_validation_error(exc)) from exc


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    since: SinceOpt = None,
    until: UntilOpt = None,
    language: LanguageOpt = None,
    source: SourceOpt = None,
    model_version: ModelOpt = None,
    min_score: Annotated[float | None, typer.Option(help="Lowest score.")] = None,
    max_score: Annotated[float | None, typer.Option(help="Highest score.")] = None,
    flagged: Annotated[bool | None, typer.Option("--flagged/--unflagged")] = None,
    status: Annotated[str | None, typer.Option(help="pending or decided.")] = None,
    decision: Annotated[Decision | None, typer.Option(help="Latest decision.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """List results, newest first."""
    from services.api.presenters import results_public
    from services.results_query.database import open_sessions
    from services.results_query.filters import ResultFilter
    from services.results_query.results import list_results

    filters = _validated(
        ResultFilter,
        since=since,
        until=until,
        language=language,
        source=source,
        model_version=model_version,
        min_score=min_score,
        max_score=max_score,
        flagged=flagged,
        review_status=status,
        decision=decision,
    )
    with open_sessions(state_settings(ctx).database) as sessions, sessions() as session:
        page = results_public(
            list_results(session=session, filters=filters, limit=limit, offset=offset)
        )
    if as_json:
        _print_json(page)
        return
    table = Table(title=f"{len(page.data)} of {page.count} results (offset {offset})")
    for column in ("id", "classified (UTC)", "score", "lang", "source", "model", "review", "text"):
        table.add_column(column, overflow="fold" if column == "text" else "ellipsis")
    for r in page.data:
        table.add_row(
            str(r.id),
            r.classified_at.strftime("%Y-%m-%d %H:%M"),
            f"{r.score:.3f}",
            r.language or "?",
            r.source,
            r.model_version,
            r.decision.value if r.decision else (r.review_status or "-"),
            _short(r.text),
        )
    Console().print(table)


@app.command()
def show(
    ctx: typer.Context,
    result_id: Annotated[int, typer.Argument(min=1, help="The result's id.")],
    as_json: JsonOpt = False,
) -> None:
    """One result with its text and every decision revision."""
    from services.api.presenters import result_detail_public
    from services.results_query.database import open_sessions
    from services.results_query.results import get_result

    try:
        with open_sessions(state_settings(ctx).database) as sessions, sessions() as session:
            detail = result_detail_public(get_result(session=session, result_id=result_id))
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        _print_json(detail)
        return
    console = Console()
    console.print(
        f"[bold]result {detail.id}[/] ({detail.message_id}) — screening support, not a diagnosis"
    )
    console.print(
        f"score {detail.score:.3f} (threshold {detail.threshold:.3f}), "
        f"{detail.label.value}, model {detail.model_version}, "
        f"language {detail.language or '?'}, source {detail.source}, "
        f"classified {detail.classified_at.isoformat()}"
    )
    console.print(f"review: {detail.review_status or '-'}")
    console.print(detail.text or "(no text stored)", markup=False)
    if detail.decisions:
        table = Table(title="decisions")
        for column in ("rev", "decision", "moderator", "decided (UTC)", "event", "note"):
            table.add_column(column)
        for d in detail.decisions:
            table.add_row(
                str(d.revision),
                d.decision.value,
                d.moderator_id,
                d.decided_at.strftime("%Y-%m-%d %H:%M"),
                "published" if d.event_published_at else "pending",
                d.note or "",
            )
        console.print(table)


@app.command()
def stats(
    ctx: typer.Context,
    by: Annotated[
        list[str] | None,
        typer.Option(
            help="Group flag counts by day, language, source or model_version (repeatable)."
        ),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    language: LanguageOpt = None,
    source: SourceOpt = None,
    model_version: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Flag counts and rates, and moderators' verdicts per model version (no texts)."""
    from services.api.presenters import flag_counts_public, outcomes_public
    from services.results_query.aggregates import Dimension, decision_outcomes, flag_counts
    from services.results_query.database import open_sessions
    from services.results_query.filters import ResultScope

    settings: Settings = state_settings(ctx)
    scope = _validated(
        ResultScope,
        since=since,
        until=until,
        language=language,
        source=source,
        model_version=model_version,
    )
    try:
        dimensions = [Dimension(b) for b in by or ["day"]]
    except ValueError as exc:
        raise fail(f"--by takes {', '.join(d.value for d in Dimension)}: {exc}") from exc
    # No small-cell suppression here: whoever runs this holds the database credentials
    # and could read every row anyway; suppression guards the analysts' API and dashboard.
    with open_sessions(settings.database) as sessions, sessions() as session:
        flags = flag_counts_public(
            flag_counts(session=session, scope=scope, by=dimensions),
            has_denominator=settings.storage.store_unflagged is not StoreUnflagged.NOTHING,
            min_cell_size=1,
        )
        outcomes = outcomes_public(decision_outcomes(session=session, scope=scope), min_cell_size=1)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "flags": flags.model_dump(mode="json"),
                    "outcomes": outcomes.model_dump(mode="json"),
                },
                indent=2,
            )
        )
        return
    console = Console()
    table = Table(title="flags")
    for d in dimensions:
        table.add_column(d.value)
    for column in ("classified", "flagged", "rate"):
        table.add_column(column, justify="right")
    for row in flags.data:
        group = row.model_dump()
        table.add_row(
            *[str(group[d.value]) for d in dimensions],
            str(row.classified),
            str(row.flagged),
            "-" if row.flag_rate is None else f"{row.flag_rate:.1%}",
        )
    console.print(table)
    table = Table(title="moderators' verdicts (latest decision per flag)")
    for column in (
        "model",
        "flagged",
        "pending",
        "confirmed",
        "not indicators",
        "escalated",
        "precision",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for o in outcomes.data:
        table.add_row(
            o.model_version,
            str(o.flagged),
            str(o.pending),
            str(o.confirmed),
            str(o.not_indicators),
            str(o.escalated),
            "-" if o.precision is None else f"{o.precision:.1%}",
        )
    console.print(table)


def _publish_pending(settings: Settings) -> int | None:
    """Publish now; None (with a warning) if the broker is unreachable."""
    from services.api.outbox.oneshot import publish_pending_once
    from services.results_query.database import open_sessions

    with open_sessions(settings.database) as sessions:
        try:
            return asyncio.run(publish_pending_once(kafka=settings.kafka, sessions=sessions))
        except TransientError as exc:
            typer.secho(
                f"warning: decision events stay pending ({exc}); the API's relay or "
                "`depdetect results publish-pending` publishes them later",
                fg=typer.colors.YELLOW,
                err=True,
            )
            return None


@app.command()
def decide(
    ctx: typer.Context,
    result_id: Annotated[int, typer.Argument(min=1, help="The result's id.")],
    decision: Annotated[Decision, typer.Argument(help="What the moderator concluded.")],
    moderator: Annotated[str, typer.Option("--moderator", "-m", help="Moderator id.")],
    note: Annotated[str | None, typer.Option(help="Optional note (≤ 2000 characters).")] = None,
    publish: Annotated[bool, typer.Option(help="Publish the decision event now.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Record a decision (a new revision if it differs from the latest) and publish it."""
    from schemas.tables import DecisionRow
    from services.api.models import DecisionPublic
    from services.results_query.database import open_sessions
    from services.results_query.decisions import DecisionRequest, commit_decision

    settings = state_settings(ctx)
    request = _validated(DecisionRequest, decision=decision, moderator_id=moderator, note=note)
    try:
        with open_sessions(settings.database) as sessions:
            recorded = commit_decision(sessions=sessions, result_id=result_id, request=request)
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    if publish and recorded.created:
        _publish_pending(settings)
    if as_json:
        # Read back: publishing may have set event_published_at since the commit.
        with open_sessions(settings.database) as sessions, sessions() as session:
            row = session.get(DecisionRow, recorded.row.id)
            _print_json(DecisionPublic.model_validate(row))
        return
    verb = "recorded" if recorded.created else "already recorded (nothing changed):"
    typer.echo(
        f"{verb} {recorded.row.decision} on result {result_id}, "
        f"revision {recorded.row.revision}, by {recorded.row.moderator_id}"
    )


@app.command("publish-pending")
def publish_pending(ctx: typer.Context) -> None:
    """Publish decision events that are still pending (normally the API's relay does)."""
    count = _publish_pending(state_settings(ctx))
    if count is None:
        raise typer.Exit(1)
    typer.echo(f"published {count} decision events")


@app.command()
def purge(
    ctx: typer.Context,
    older_than_days: Annotated[
        int | None, typer.Option(min=1, help="Defaults to storage.retention_days.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Only count.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete results (texts and decisions included) older than the retention period.
    Export feedback first: purged decisions are gone for training too."""
    from services.results_query.database import open_sessions
    from services.results_query.purge import purge_results

    settings = state_settings(ctx)
    days = older_than_days or settings.storage.retention_days
    if days is None:
        raise fail("retention is off (storage.retention_days unset); pass --older-than-days")
    cutoff = utcnow() - timedelta(days=days)
    with open_sessions(settings.database) as sessions:
        with sessions() as session:
            count = purge_results(session=session, classified_before=cutoff, dry_run=True)
        if dry_run or not count:
            typer.echo(
                f"{count} results classified before {cutoff.isoformat()}"
                + (" would be deleted" if dry_run else "")
            )
            return
        if not yes:
            typer.confirm(
                f"delete {count} results classified before {cutoff.isoformat()}?", abort=True
            )
        with sessions.begin() as session:
            deleted = purge_results(session=session, classified_before=cutoff)
    typer.echo(f"deleted {deleted} results")
