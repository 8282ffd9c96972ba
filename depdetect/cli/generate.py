"""`depdetect train generate …`: training texts from Claude via the Message Batches API.

`plan` is the dry run (no key, no network). `run` creates a run directory or resumes the
one given; `report` re-reads a run directory and rewrites its outputs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from depdetect.cli.common import command_group, fail, state_settings
from depdetect.settings import Settings
from schemas.errors import DepdetectError

app = command_group(
    help="Generate labelled training texts with Claude (Message Batches API).",
)

RunDir = Annotated[
    Path | None,
    typer.Option(
        "--run-dir", help="Run directory (state, outputs); default <work_dir>/generation/default"
    ),
]
TextsPerCell = Annotated[
    int | None,
    typer.Option(help="Mean texts per language × state × category × bucket cell (default 100)"),
]
TextsPerRequest = Annotated[
    int | None, typer.Option(help="Texts asked for in one request (default 5)")
]
Languages = Annotated[
    str | None, typer.Option(help="Comma-separated codes out of en,de,fr,it,pt,es (default all)")
]
States = Annotated[
    str | None, typer.Option(help="Comma-separated: Healthy,Unhealthy (default both)")
]
Categories = Annotated[
    str | None, typer.Option(help="Comma-separated category names (default all five)")
]
Buckets = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated MIN-MAX:SHARE, e.g. 3-8:0.2,9-15:0.1,16-35:0.4,36-60:0.2,61-90:0.1"
    ),
]
Seed = Annotated[int | None, typer.Option(help="Seed for personas and testimonials")]
Tolerance = Annotated[
    float | None, typer.Option(help="Relative word-count tolerance per bucket (default 0.15)")
]
Structured = Annotated[
    bool | None,
    typer.Option(
        "--structured-output/--no-structured-output",
        help="Ask for JSON-schema constrained output (default on)",
    ),
]


def _split(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def _buckets(value: str | None) -> tuple[object, ...] | None:
    if value is None:
        return None
    from training.generate.config import Bucket

    buckets = []
    for part in _split(value) or ():
        try:
            words, share = part.split(":")
            low, high = words.split("-")
            buckets.append(Bucket(min_words=int(low), max_words=int(high), share=float(share)))
        except ValueError as exc:
            raise fail(f"bucket {part!r}: expected MIN-MAX:SHARE ({exc})") from exc
    return tuple(buckets)


def _plan_overrides(
    texts_per_cell: int | None,
    texts_per_request: int | None,
    languages: str | None,
    states: str | None,
    categories: str | None,
    buckets: str | None,
    seed: int | None,
    tolerance: float | None,
    structured_output: bool | None,
) -> dict[str, object]:
    """The plan options given on the command line (None means: not given)."""
    values: dict[str, object | None] = {
        "texts_per_cell": texts_per_cell,
        "texts_per_request": texts_per_request,
        "languages": _split(languages),
        "states": _split(states),
        "categories": _split(categories),
        "buckets": _buckets(buckets),
        "seed": seed,
        "length_tolerance": tolerance,
        "structured_output": structured_output,
    }
    return {key: value for key, value in values.items() if value is not None}


def _config(settings: Settings, overrides: dict[str, object]):  # type: ignore[no-untyped-def]
    from training.generate.config import GenerationConfig

    return GenerationConfig.from_settings(settings.anthropic, **overrides)


def _run_dir(settings: Settings, run_dir: Path | None) -> Path:
    return run_dir or settings.data.work_dir / "generation" / "default"


def _console() -> Console:
    return Console(stderr=False)


def _api_key(settings: Settings) -> str:
    if settings.anthropic.api_key is not None:
        return settings.anthropic.api_key.get_secret_value()
    # The SDK's own variable, for those who already have it set.
    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        from training.generate.errors import MissingApiKeyError

        raise MissingApiKeyError(
            "a real run needs an API key: set DEPDETECT_ANTHROPIC__API_KEY or ANTHROPIC_API_KEY "
            "(`depdetect train generate plan` works without one)"
        )
    return key


@app.command("plan")
def plan_command(
    ctx: typer.Context,
    texts_per_cell: TextsPerCell = None,
    texts_per_request: TextsPerRequest = None,
    languages: Languages = None,
    states: States = None,
    categories: Categories = None,
    buckets: Buckets = None,
    seed: Seed = None,
    tolerance: Tolerance = None,
    structured_output: Structured = None,
    examples: Annotated[
        bool, typer.Option(help="Also print one Healthy and one Unhealthy prompt")
    ] = False,
) -> None:
    """Dry run: print the plan, the number of requests and a token and cost estimate."""
    from training.generate.plan import build_plan, estimate
    from training.generate.report import render_plan
    from training.generate.seeds import load_seeds

    settings = state_settings(ctx)
    try:
        config = _config(
            settings,
            _plan_overrides(
                texts_per_cell,
                texts_per_request,
                languages,
                states,
                categories,
                buckets,
                seed,
                tolerance,
                structured_output,
            ),
        )
        plan = build_plan(config, load_seeds(settings.data.seed_dir))
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    console = _console()
    console.print(
        f"model {config.model}, temperature {config.temperature}, "
        f"max_tokens {config.max_tokens}, seed {config.seed}"
    )
    render_plan(console, plan, estimate(config, plan))
    if examples:
        for state in config.states:
            request = next(r for r in plan if r.cell.state == state)
            console.rule(f"{request.custom_id(1)} ({state})")
            console.print(request.params["messages"][0]["content"], markup=False, highlight=False)


@app.command("run")
def run_command(
    ctx: typer.Context,
    run_dir: RunDir = None,
    texts_per_cell: TextsPerCell = None,
    texts_per_request: TextsPerRequest = None,
    languages: Languages = None,
    states: States = None,
    categories: Categories = None,
    buckets: Buckets = None,
    seed: Seed = None,
    tolerance: Tolerance = None,
    structured_output: Structured = None,
    retry_limit: Annotated[
        int, typer.Option(help="Resubmissions per failed request before giving up")
    ] = 2,
    max_requests_per_batch: Annotated[
        int, typer.Option(help="Requests per batch (API limit 100,000)")
    ] = 5_000,
    poll_seconds: Annotated[
        float, typer.Option(min=1.0, help="First wait between status checks; grows to 10 minutes")
    ] = 30.0,
    output_format: Annotated[
        str, typer.Option("--format", help="Output table: csv or parquet")
    ] = "csv",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Create a run (plan stored first) or resume the one in --run-dir, then write outputs.

    Options that shape the plan may be left out when resuming: the stored ones apply.
    """
    from training.generate.batches import BatchApi, make_client
    from training.generate.config import RunOptions, Timing
    from training.generate.report import export_outputs, group_counts, render_counts, write_report
    from training.generate.runner import Generator, open_run, stored_config
    from training.generate.state import RunStore

    if output_format not in ("csv", "parquet"):
        raise fail(f"--format must be csv or parquet, not {output_format!r}")
    settings = state_settings(ctx)
    directory = _run_dir(settings, run_dir)
    overrides = _plan_overrides(
        texts_per_cell,
        texts_per_request,
        languages,
        states,
        categories,
        buckets,
        seed,
        tolerance,
        structured_output,
    )
    console = _console()
    try:
        key = _api_key(settings)
        existing = None
        if (directory / "state.sqlite").exists() and not overrides:
            probe = RunStore(directory)
            existing = stored_config(probe)
            probe.close()
        config = existing or _config(settings, overrides)
        options = RunOptions.from_settings(
            settings.data,
            retry_limit=retry_limit,
            max_requests_per_batch=max_requests_per_batch,
            timing=Timing(poll_initial_s=poll_seconds),
            show_progress=progress and sys.stdout.isatty(),
        )
        store = open_run(directory, config, options)
        try:
            client = make_client(key, max_retries=options.sdk_max_retries)
            generator = Generator(store, config, options, BatchApi(client, options.timing))
            statuses = generator.run()
            cells = write_report(store, directory)
            output, rejects, n_out, n_rej = export_outputs(
                store,
                directory,
                output_format,  # type: ignore[arg-type]
            )
        finally:
            store.close()
    except KeyboardInterrupt:
        raise fail(f"interrupted; rerun with --run-dir {directory} to resume", code=130) from None
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    render_counts(console, group_counts(cells, ("language", "state")), "By language and state")
    render_counts(console, group_counts(cells, ()), "Total")
    console.print(f"requests by status: {statuses}")
    console.print(
        f"{n_out} texts in {output}; {n_rej} rejects in {rejects}; "
        f"per-cell report in {directory / 'report_cells.csv'}"
    )


@app.command("report")
def report_command(
    ctx: typer.Context,
    run_dir: RunDir = None,
    by: Annotated[
        str,
        typer.Option(
            help="Group by: comma-separated language,state,category,bucket; 'cell' "
            "for every cell; '' for totals"
        ),
    ] = "language,state",
    output_format: Annotated[
        str, typer.Option("--format", help="Output table: csv or parquet")
    ] = "csv",
) -> None:
    """Count what a run produced (per cell) and rewrite its output table and rejects file."""
    from training.generate.report import (
        DIMENSIONS,
        export_outputs,
        group_counts,
        render_counts,
        write_report,
    )
    from training.generate.runner import stored_config
    from training.generate.state import RunStore

    settings = state_settings(ctx)
    directory = _run_dir(settings, run_dir)
    if not (directory / "state.sqlite").exists():
        raise fail(f"no run in {directory}")
    dims = DIMENSIONS if by == "cell" else _split(by) or ()
    if any(dim not in DIMENSIONS for dim in dims):
        raise fail(f"--by takes {', '.join(DIMENSIONS)} or 'cell'")
    store = RunStore(directory)
    try:
        config = stored_config(store)
        cells = write_report(store, directory)
        output, rejects, n_out, n_rej = export_outputs(
            store,
            directory,
            output_format,  # type: ignore[arg-type]
        )
    finally:
        store.close()
    console = _console()
    if config is not None:
        console.print(f"config: {config.model_dump_json()}")
    render_counts(console, group_counts(cells, dims), f"Run {directory}")
    console.print(f"{n_out} texts in {output}; {n_rej} rejects in {rejects}")
