"""Parity between two scorers of the same texts (PyTorch vs ONNX, fp32 vs int8)."""

from __future__ import annotations

from typing import Any

import numpy as np


def parity(reference: np.ndarray, candidate: np.ndarray, threshold: float) -> dict[str, Any]:
    """Label agreement at the threshold and at 0.5, and probability differences."""
    diff = np.abs(np.asarray(reference) - np.asarray(candidate))
    return {
        "n": len(diff),
        "label_agreement": float(np.mean((reference >= threshold) == (candidate >= threshold))),
        "argmax_agreement": float(np.mean((reference >= 0.5) == (candidate >= 0.5))),
        "max_prob_diff": float(diff.max()) if len(diff) else 0.0,
        "mean_prob_diff": float(diff.mean()) if len(diff) else 0.0,
        "mean_shift": float(np.mean(candidate - reference)) if len(diff) else 0.0,
    }
