"""Markdown tables for reports and the model card: one cell format everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def cell(value: Any) -> str:
    """A dash for no value, three decimals for a float, the text of anything else."""
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Header, rule and rows; a row's values go through :func:`cell` unless already text."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(v if isinstance(v, str) else cell(v) for v in row) + " |" for row in rows
    ]
    return lines
