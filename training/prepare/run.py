"""``prepare``: the short orchestrator from input tables to written splits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from schemas.errors import ConfigurationError
from training.config import PrepareConfig
from training.prepare.audit import audit, format_audit, source_summary
from training.prepare.clean import clean_frame, filter_length
from training.prepare.dedup import deduplicate
from training.prepare.manifest import PreparedData, SplitFile
from training.prepare.report import format_report, write_plots
from training.prepare.sentiment import load_sentiment_corpus
from training.prepare.split import SPLITS, balance, cap_sources, grouped_split, source_weights
from training.prepare.tables import InputSpec, read_labelled, write_table
from training.provenance import describe_input

METADATA = PreparedData.FILE
SPLIT_COLUMNS = (
    "text",
    "label",
    "language",
    "category",
    "bucket",
    "word_count",
    "source",
    "origin",
    "weight",
    "group",
)


def split_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.csv"


def prepare(
    inputs: Sequence[InputSpec],
    out_dir: Path,
    config: PrepareConfig | None = None,
    *,
    sentiment: str | Path | None = None,
    sentiment_weight: float = 1.0,
    log: bool = True,
) -> PreparedData:
    config = config or PrepareConfig()
    frames = [read_labelled(spec) for spec in inputs]
    sources: list[tuple[str | Path, float]] = [(spec.path, spec.weight) for spec in inputs]
    if sentiment is not None:
        frames.append(load_sentiment_corpus(sentiment, weight=sentiment_weight))
        sources.append((sentiment, sentiment_weight))
    if not frames:
        raise ConfigurationError("prepare needs at least one input table or the sentiment corpus")
    data = pd.concat(frames, ignore_index=True)
    steps = {"read": len(data)}

    data, clean_counts = clean_frame(data)
    steps["cleaned (empty and other-language rows dropped)"] = len(data)
    data, dup_counts = deduplicate(
        data,
        drop_threshold=config.near_duplicate_threshold,
        group_threshold=config.group_threshold,
        seed=config.seed,
    )
    steps["deduplicated"] = len(data)
    data = filter_length(data, config.min_words, config.max_words)
    steps[f"{config.min_words}-{config.max_words} words"] = len(data)
    if config.max_rows_per_source is not None:
        data = cap_sources(data, config.max_rows_per_source, config.seed)
        steps[f"at most {config.max_rows_per_source} rows per source"] = len(data)
    data = balance(data, config.max_negative_ratio, config.seed).reset_index(drop=True)
    steps["balanced"] = len(data)
    data["weight"] = source_weights(data, config.source_balance)
    if data["label"].nunique() < 2:
        raise ConfigurationError("prepared data has only one label; add labelled inputs")
    data["split"] = grouped_split(data, config.split_ratios, config.seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    rows, splits = {}, {}
    for name in SPLITS:
        part = data[data["split"] == name]
        write_table(part[list(SPLIT_COLUMNS)], split_path(out_dir, name))
        rows[name] = len(part)
        splits[name] = SplitFile.describe(split_path(out_dir, name), len(part))

    shortcut = audit(data, config.normalization, config.seed)
    audit_text = format_audit(shortcut)
    report_text = format_report(data, steps)
    (out_dir / "audit.txt").write_text(audit_text + "\n", encoding="utf-8")
    (out_dir / "report.txt").write_text(report_text + "\n", encoding="utf-8")
    if config.plots:
        write_plots(data, out_dir / "plots")
    summary: dict[str, object] = {
        "rows": rows,
        "steps": steps,
        "dropped": {**clean_counts, **dup_counts},
        "labels": {str(k): int(v) for k, v in data["label"].value_counts().items()},
        "languages": {str(k): int(v) for k, v in data["language"].value_counts().items()},
        # Names, row counts and hashes, never paths: this travels inside the bundle.
        "inputs": [
            describe_input(source, rows=len(frame), weight=weight)
            for (source, weight), frame in zip(sources, frames, strict=True)
        ],
        "shortcut_auc": {
            "raw": shortcut["shortcut_auc_raw"],
            "normalized": shortcut["shortcut_auc_normalized"],
        },
        "source_audit": source_summary(
            shortcut["source_audit"] if isinstance(shortcut["source_audit"], dict) else None
        ),
        "config": {k: v for k, v in asdict(config).items() if k != "normalization"},
        "normalization": config.normalization.model_dump(),
    }
    # Through JSON first: numpy scalars and tuples in the summary become plain values.
    plain = json.loads(json.dumps(summary, default=str))
    prepared = PreparedData.model_validate({**plain, "splits": splits}).save(out_dir)
    if log:
        print(report_text)
        print()
        print(audit_text)
    return prepared


def read_split(directory: Path, name: str) -> pd.DataFrame:
    path = split_path(directory, name)
    if not path.is_file():
        raise ConfigurationError(f"{path} not found: run `depdetect train prepare` first")
    return pd.read_csv(path, sep="|", dtype={"text": str}, keep_default_na=False)
