"""``depdetect evaluate``: score any labelled table with a bundle. No torch."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from schemas.errors import ConfigurationError
from services.inference.runner import ModelRunner
from training.evaluate.metrics import binary_metrics, format_metrics, metrics_by_group
from training.prepare.tables import read_table

LANGUAGE_COLUMNS = ("lang", "language")
SOURCE_COLUMN = "source"


def parse_labels(values: pd.Series, names: list[str], column: str) -> np.ndarray:
    """0/1 (or the bundle's label names, or true/false) to ints; anything else refused."""
    mapping = {"0": 0, "1": 1, "false": 0, "true": 1, names[0].lower(): 0, names[1].lower(): 1}
    mapped = values.astype(str).str.strip().str.lower().map(mapping)
    if mapped.isna().any():
        bad = values[mapped.isna()].head(3).tolist()
        raise ConfigurationError(
            f"column {column!r} has {int(mapped.isna().sum())} value(s) that are not 0/1 or "
            f"{names}, e.g. {bad}"
        )
    return mapped.to_numpy(dtype=int)


def evaluate_file(
    bundle: Path,
    data: Path,
    *,
    sep: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    threshold: float | None = None,
    batch_size: int = 32,
    threads: int = 2,
    sources: Sequence[str] = (),
) -> dict[str, Any]:
    """Metrics at the bundle's threshold, per language and per source where the table has
    those columns. ``sources`` keeps only those sources' rows: e.g. the synthetic and
    sentiment-corpus rows of a prepared test split, the "in-distribution" part of a split
    that also holds real data."""
    table = select_sources(read_table(data, sep), sources, data)
    for column in (text_column, label_column):
        if column not in table.columns:
            raise ConfigurationError(
                f"{data} has no column {column!r}; columns are {list(table.columns)} "
                "(use --text-column/--label-column/--sep)"
            )
    scorer = ModelRunner.from_bundle(bundle, intra_op_threads=threads)
    manifest = scorer.manifest
    labels = parse_labels(table[label_column], manifest.labels, label_column)
    cut = manifest.threshold if threshold is None else threshold
    started = time.perf_counter()
    scores = scorer.predict_proba(table[text_column].astype(str).tolist(), batch_size)
    seconds = time.perf_counter() - started
    result = binary_metrics(labels, scores, cut)
    language = next((c for c in LANGUAGE_COLUMNS if c in table.columns), None)
    if language:
        result["per_language"] = metrics_by_group(labels, scores, table[language].astype(str), cut)
    if SOURCE_COLUMN in table.columns:
        result["per_source"] = metrics_by_group(
            labels, scores, table[SOURCE_COLUMN].astype(str), cut
        )
    if sources:
        result["sources"] = sorted(sources)
    result["model_version"] = manifest.model_version
    result["seconds"] = round(seconds, 3)
    return result


def select_sources(table: pd.DataFrame, sources: Sequence[str], data: Path) -> pd.DataFrame:
    if not sources:
        return table
    if SOURCE_COLUMN not in table.columns:
        raise ConfigurationError(f"{data} has no {SOURCE_COLUMN!r} column to select sources by")
    present = set(table[SOURCE_COLUMN].astype(str))
    unknown = sorted(set(sources) - present)
    if unknown:
        raise ConfigurationError(
            f"{data} has no rows from source(s) {unknown}; its sources are {sorted(present)}"
        )
    return table[table[SOURCE_COLUMN].astype(str).isin(set(sources))].reset_index(drop=True)


def format_result(result: dict[str, Any]) -> str:
    lines = [
        format_metrics(result, f"model {result['model_version']}, scored in {result['seconds']} s")
    ]
    for language, metrics in result.get("per_language", {}).items():
        lines += ["", format_metrics(metrics, f"language {language}")]
    for source, metrics in result.get("per_source", {}).items():
        lines += ["", format_metrics(metrics, f"source {source}")]
    return "\n".join(lines)
