"""``depdetect evaluate --suite DIR``: one table over every labelled table of a folder.

Each ``*.csv`` (``text|label|language|...``) is a set; its rows are scored by the
bundle's runner (the service's scorer, chunking and calibration included) and, when
given, by the TF-IDF reference. One row per set and per language within a set: n,
positives, precision, recall and F1 at the threshold, ROC-AUC, PR-AUC and the flag
rate (the share flagged: the false-flag rate of a set that is all label 0), with 95 %
intervals for ROC-AUC and the flag rate (``training.evaluate.uncertainty``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from schemas.errors import ConfigurationError
from services.inference.runner import ModelRunner
from training.evaluate.markdown import cell, markdown_table
from training.evaluate.metrics import binary_metrics
from training.evaluate.uncertainty import auc_interval, rate_interval
from training.prepare.tables import read_table

Scorer = Callable[[Sequence[str]], np.ndarray]
COLUMNS = ("set", "language", "n", "positives", "precision", "recall", "f1")
COLUMNS_AUC = ("roc_auc", "pr_auc", "flag_rate")


def suite_tables(directory: Path) -> dict[str, pd.DataFrame]:
    tables = sorted(directory.glob("*.csv"))
    if not tables:
        raise ConfigurationError(f"no *.csv tables in {directory}")
    out = {}
    for path in tables:
        table = read_table(path)
        missing = {"text", "label"} - set(table.columns)
        if missing:
            raise ConfigurationError(f"{path} lacks column(s) {sorted(missing)}")
        table["label"] = pd.to_numeric(table["label"], errors="raise").astype(int)
        out[path.stem] = table
    return out


def rows_for(
    name: str, table: pd.DataFrame, scores: np.ndarray, threshold: float
) -> list[dict[str, Any]]:
    """The set's row, then one per language when the set has several."""
    labels = table["label"].to_numpy(dtype=int)
    slices: list[tuple[str, np.ndarray]] = [("all", np.ones(len(table), dtype=bool))]
    if "language" in table and table["language"].nunique() > 1:
        language = table["language"].astype(str).to_numpy()
        slices += [(lang, language == lang) for lang in sorted(set(language.tolist()))]
    rows = []
    for label, mask in slices:
        metrics = binary_metrics(labels[mask], scores[mask], threshold)
        flagged = int((scores[mask] >= threshold).sum())
        rows.append(
            {
                "set": name,
                "language": label,
                "n": int(mask.sum()),
                "positives": int(labels[mask].sum()),
                "precision": metrics["precision"] if labels[mask].any() else None,
                "recall": metrics["recall"] if labels[mask].any() else None,
                "f1": metrics["f1"] if labels[mask].any() else None,
                "roc_auc": metrics["roc_auc"],
                "roc_auc_ci": auc_interval(labels[mask], scores[mask]),
                "pr_auc": metrics["pr_auc"],
                "flag_rate": flagged / int(mask.sum()) if mask.any() else None,
                "flag_rate_ci": rate_interval(flagged, int(mask.sum())),
                "threshold": threshold,
            }
        )
    return rows


def evaluate_suite(
    scorers: dict[str, tuple[Scorer, float]],
    directory: Path,
    *,
    plots: Path | None = None,
) -> dict[str, Any]:
    """Score every table with every scorer ``name -> (score, threshold)``."""
    tables = suite_tables(directory)
    result: dict[str, Any] = {"suite": str(directory), "models": {}}
    all_scores: dict[str, dict[str, np.ndarray]] = {}
    for model, (score, threshold) in scorers.items():
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        for name, table in tables.items():
            scores = np.asarray(score(table["text"].astype(str).tolist()), dtype=float)
            all_scores.setdefault(name, {})[model] = scores
            rows += rows_for(name, table, scores, threshold)
        result["models"][model] = {
            "threshold": threshold,
            "seconds": round(time.perf_counter() - started, 1),
            "rows": rows,
        }
    if plots is not None:
        result["plots"] = [str(p) for p in write_curves(tables, all_scores, plots)]
    return result


def bundle_scorer(bundle: Path, threads: int = 2, batch_size: int = 32) -> tuple[Scorer, float]:
    runner = ModelRunner.from_bundle(bundle, intra_op_threads=threads)
    return (lambda texts: runner.predict_proba(texts, batch_size)), runner.threshold


INTERVALS_NOTE = "In brackets: 95 % intervals (ROC-AUC: stratified bootstrap; flag rate: Wilson)."


def _with_interval(row: dict[str, Any], column: str) -> str:
    interval = row.get(f"{column}_ci")
    if row.get(column) is None or interval is None:
        return cell(row.get(column))
    return f"{row[column]:.3f} ({interval[0]:.3f}–{interval[1]:.3f})"


def table_lines(result: dict[str, Any]) -> list[str]:
    """The suite as a markdown table: one row per model, set and language."""
    return markdown_table(
        ["model", *COLUMNS, *COLUMNS_AUC],
        (
            [model, *(cell(row.get(c)) for c in COLUMNS)]
            + [_with_interval(row, c) for c in COLUMNS_AUC]
            for model, body in result.get("models", {}).items()
            for row in body.get("rows", [])
        ),
    )


def format_table(result: dict[str, Any]) -> str:
    thresholds = ", ".join(f"{m} {b['threshold']:.4f}" for m, b in result["models"].items())
    return "\n".join([*table_lines(result), "", f"thresholds: {thresholds}", INTERVALS_NOTE])


def write_curves(
    tables: dict[str, pd.DataFrame], scores: dict[str, dict[str, np.ndarray]], directory: Path
) -> list[Path]:
    """ROC and precision-recall curves per set with both labels (one PNG per set)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        labels = table["label"].to_numpy(dtype=int)
        if len(np.unique(labels)) < 2:
            continue
        fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4))
        for model, values in scores[name].items():
            fpr, tpr, _ = roc_curve(labels, values)
            precision, recall, _ = precision_recall_curve(labels, values)
            roc.plot(fpr, tpr, label=model)
            pr.plot(recall, precision, label=model)
        roc.plot([0, 1], [0, 1], linestyle=":", color="grey")
        roc.set(title=f"{name}: ROC", xlabel="false positive rate", ylabel="true positive rate")
        pr.set(title=f"{name}: precision-recall", xlabel="recall", ylabel="precision")
        roc.legend()
        pr.legend()
        fig.tight_layout()
        path = directory / f"{name}_roc_pr.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def truncated_scorer(bundle: Path, threads: int = 2, batch_size: int = 32) -> Scorer:
    """The same bundle with chunking off (texts truncated): what chunking buys."""
    runner = ModelRunner.from_bundle(bundle, intra_op_threads=threads, chunking=None)
    return lambda texts: runner.predict_proba(texts, batch_size)


def suite_scorers(
    bundle: Path,
    *,
    reference_data: Path | None = None,
    compare_truncation: bool = False,
    threads: int = 2,
) -> dict[str, tuple[Scorer, float]]:
    """The bundle, optionally the bundle without chunking, and the TF-IDF reference
    trained on ``reference_data``'s train split (threshold tuned on its validation)."""
    from schemas.bundle import read_manifest

    manifest = read_manifest(bundle)
    scorers = {"bundle": bundle_scorer(bundle, threads)}
    if compare_truncation and manifest.chunking.enabled:
        scorers["bundle (truncated)"] = (truncated_scorer(bundle, threads), manifest.threshold)
    if reference_data is not None:
        from training.evaluate.reference import TfidfReference
        from training.prepare.run import read_split

        reference = TfidfReference.fit(
            read_split(reference_data, "train"), normalization=manifest.normalization
        )
        target = float(manifest.metrics.get("target_precision", 0.95))
        threshold = reference.tune(read_split(reference_data, "validation"), target)
        scorers["tfidf"] = (reference.predict_proba, threshold)
    return scorers
