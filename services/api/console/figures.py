"""The dashboard's plots, drawn server-side with matplotlib as SVG from the same public
models the /aggregates endpoints return (suppressed cells are already None there)."""

from __future__ import annotations

import io
from collections import defaultdict

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from services.api.models import (
    FlagCountsPublic,
    OutcomesPublic,
    ReviewTimesPublic,
    ScoreDriftPublic,
)

# Dark on light, colour-blind-safe pair (Okabe-Ito) for the two series people compare.
CURRENT, PREVIOUS = "#0072B2", "#E69F00"
#: One colour per language line, the same Okabe-Ito palette.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
SIZE = (7.0, 3.2)


def _svg(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def flags_figure(flags: FlagCountsPublic, *, rates: bool) -> bytes:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    series: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for row in flags.data:
        value = row.flag_rate if rates else row.flagged
        if value is not None and row.day is not None:
            series[row.language or "unknown"].append((row.day, float(value)))
    if not series:
        _empty(ax, "no cell with enough items to show")
        return _svg(fig)
    days = sorted({day for points in series.values() for day, _ in points})
    for n, (language, points) in enumerate(sorted(series.items())):
        xs = [days.index(day) for day, _ in points]
        colour = PALETTE[n % len(PALETTE)]
        ax.plot(xs, [v for _, v in points], marker="o", label=language, color=colour)
    ax.set_xticks(range(len(days)), [d[5:] for d in days], rotation=45, ha="right")
    ax.set_ylabel("flag rate" if rates else "flags")
    if not rates:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Flags per day and language" + (" (rate)" if rates else ""))
    ax.legend(title="language", fontsize="small")
    ax.grid(alpha=0.3)
    return _svg(fig)


def drift_figure(drift: ScoreDriftPublic) -> bytes:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    width = (drift.bins[0].high - drift.bins[0].low) * 0.4
    lows = [b.low for b in drift.bins]

    def shares(values: list[int | None]) -> list[float]:
        total = sum(v for v in values if v is not None)
        return [(v or 0) / total if total else 0.0 for v in values]

    days = (drift.until - drift.current_since).days
    ax.bar(
        [x + width / 2 for x in lows],
        shares([b.previous for b in drift.bins]),
        width=width,
        color=PREVIOUS,
        label=f"previous {days} days",
    )
    ax.bar(
        [x + 1.5 * width for x in lows],
        shares([b.current for b in drift.bins]),
        width=width,
        color=CURRENT,
        label=f"last {days} days",
    )
    ax.set_xlabel("score")
    ax.set_ylabel("share of results")
    ax.set_title("Score distribution: last N days against the N before (drift)")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    return _svg(fig)


def precision_figure(outcomes: OutcomesPublic) -> bytes:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    rows = [r for r in outcomes.data if r.precision is not None]
    if not rows:
        _empty(ax, "no cell with enough judged flags to show")
        return _svg(fig)
    labels = [f"{r.model_version}\n{r.language or 'all'}" for r in rows]
    ax.bar(range(len(rows)), [r.precision or 0.0 for r in rows], color=CURRENT)
    ax.set_xticks(range(len(rows)), labels, fontsize="small")
    ax.set_ylim(0, 1)
    ax.set_ylabel("precision")
    ax.set_title("Precision of flags (moderators' decisions) per model and language")
    ax.grid(alpha=0.3, axis="y")
    return _svg(fig)


def review_figure(reviews: ReviewTimesPublic) -> bytes:
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    days = [d for d in reviews.days if d.median_hours is not None]
    if not days:
        _empty(ax, "no day with enough reviews to show")
        return _svg(fig)
    xs = range(len(days))
    ax.plot(xs, [d.median_hours or 0.0 for d in days], marker="o", color=CURRENT, label="median")
    ax.plot(
        xs, [d.p90_hours or 0.0 for d in days], marker="s", color=PREVIOUS, label="90th percentile"
    )
    ax.set_xticks(list(xs), [d.day[5:] for d in days], rotation=45, ha="right")
    ax.set_ylabel("hours from flag to first decision")
    ax.set_title("Time to review")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _svg(fig)
