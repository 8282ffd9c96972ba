"""Leave one source out: train the cheap reference without source S, score S.

The model is the TF-IDF reference (``training.evaluate.reference``), not the fine-tuned
transformer (one fine-tuning per source does not fit a CPU budget). For a source with
both labels the table gives ROC-AUC and PR-AUC; for a one-label source the flag rate
at the threshold tuned on the remaining sources' validation rows (for an all-0 source
the share of false flags, for an all-1 source the recall). A source the others cannot
score is one the model learns as a source, not as a signal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from schemas.text import NormalizationSettings
from training.evaluate.markdown import markdown_table
from training.evaluate.metrics import binary_metrics
from training.evaluate.reference import TfidfReference


def leave_one_source_out(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    held: pd.DataFrame,
    *,
    target_precision: float = 0.95,
    normalization: NormalizationSettings | None = None,
    min_rows: int = 20,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per source of ``held`` (all splits of the prepared data, usually)."""
    rows = []
    for source in sorted(held["source"].astype(str).unique()):
        target = held[held["source"].astype(str) == source]
        rest = train[train["source"].astype(str) != source]
        rest_validation = validation[validation["source"].astype(str) != source]
        if len(target) < min_rows or rest["label"].nunique() < 2:
            continue
        model = TfidfReference.fit(rest, normalization=normalization, seed=seed)
        threshold = model.tune(rest_validation, target_precision)
        labels = target["label"].to_numpy(dtype=int)
        scores = model.predict_proba(target["text"].astype(str).tolist())
        metrics = binary_metrics(labels, scores, threshold)
        rows.append(
            {
                "source": source,
                "n": len(target),
                "label1_rate": float(labels.mean()),
                "roc_auc": metrics["roc_auc"],
                "pr_auc": metrics["pr_auc"],
                "precision": metrics["precision"] if labels.any() else None,
                "recall": metrics["recall"] if labels.any() else None,
                "flag_rate": float(np.mean(scores >= threshold)),
                "threshold": threshold,
            }
        )
    return rows


def format_loso(rows: list[dict[str, Any]]) -> str:
    keys = ("source", "n", "label1_rate", "roc_auc", "pr_auc", "precision", "recall", "flag_rate")
    return "\n".join(markdown_table(keys, ([r[k] for k in keys] for r in rows)))
