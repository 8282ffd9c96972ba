"""Binary metrics from P(label 1). Torch-free.

ROC-AUC and PR-AUC use the probability of the positive class for every row (the
original project used the predicted class's confidence, which is not a ranking).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)


def binary_metrics(
    labels: Sequence[int] | np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, Any]:
    y = np.asarray(labels, dtype=int)
    p = np.asarray(scores, dtype=float)
    predicted = (p >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", pos_label=1, zero_division=0
    )
    both = len(np.unique(y)) == 2  # AUCs are undefined on one class
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    return {
        "n": len(y),
        "accuracy": float(accuracy_score(y, predicted)) if len(y) else float("nan"),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "threshold": float(threshold),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def metrics_by_group(
    labels: np.ndarray, scores: np.ndarray, groups: Sequence[str], threshold: float
) -> dict[str, dict[str, Any]]:
    keys = np.asarray(groups, dtype=str)
    return {
        str(g): binary_metrics(labels[keys == g], scores[keys == g], threshold)
        for g in sorted(set(keys.tolist()))
    }


def format_metrics(metrics: dict[str, Any], title: str = "") -> str:
    def number(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    cm = metrics["confusion_matrix"]
    lines = [title] if title else []
    lines += [
        f"rows {metrics['n']}  threshold {metrics['threshold']:.4f}",
        "accuracy {}  precision {}  recall {}  f1 {}  roc_auc {}  pr_auc {}".format(
            *(
                number(metrics[k])
                for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc")
            )
        ),
        "confusion matrix (rows true 0/1, columns predicted 0/1):",
        f"  {cm['tn']:>7} {cm['fp']:>7}",
        f"  {cm['fn']:>7} {cm['tp']:>7}",
    ]
    return "\n".join(lines)
