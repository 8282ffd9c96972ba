"""The dataset report: distribution tables (text) and bar plots (PNG)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

DIMENSIONS = ("language", "label", "category", "bucket", "source")


def distribution(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows and share per value, by split, like the original project's summary."""
    values = frame[column].astype(str).replace("", "(none)")
    table = pd.crosstab(values, frame["split"], margins=True, margins_name="total")
    share = table["total"] / max(1, len(frame)) * 100
    return table.assign(percent=share.round(2))


def format_report(frame: pd.DataFrame, steps: dict[str, int]) -> str:
    lines = ["Dataset report", "", "Rows after each step:"]
    lines += [f"  {name}: {count:,}" for name, count in steps.items()]
    for column in DIMENSIONS:
        lines += ["", f"Distribution by {column}:", distribution(frame, column).to_string()]
    lines += [
        "",
        "Label by language (all splits):",
        pd.crosstab(frame["language"], frame["label"], margins=True).to_string(),
    ]
    return "\n".join(lines)


def write_plots(frame: pd.DataFrame, directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for column in DIMENSIONS:
        values = frame[column].astype(str).replace("", "(none)")
        table = pd.crosstab(values, frame["label"])
        fig, ax = plt.subplots(figsize=(7, 4))
        table.plot.bar(ax=ax, stacked=True)
        ax.set_title(f"Rows by {column} and label")
        ax.set_ylabel("rows")
        fig.tight_layout()
        path = directory / f"distribution_{column}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
