"""``calibrate_bundle``: fit the score calibration and the threshold on the shipped scores.

Runs after export on the finished bundle, torch-free: the validation split (which mixes
the real and the synthetic sources, see ``prepare``) is scored by the bundle's own runner
with the chosen chunking, a temperature (or Platt) scaling is fit to the pooled margins
with the rows' loss weights (so no source decides), and the threshold is tuned on the
calibrated scores for the target precision. Only ``bundle.json`` changes: the model
version (a hash of the graph and tokenizer) stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

from schemas.bundle import (
    BundleManifest,
    Calibration,
    read_manifest,
    write_manifest,
)
from services.inference.runner import ModelRunner, calibrated
from training.config import CalibrateConfig, CalibrationMethod
from training.errors import ModelCollapsedError
from training.evaluate.metrics import binary_metrics, metrics_by_group
from training.finetune.threshold import tune_threshold
from training.prepare.run import read_split

#: Per-language thresholds need this many positives of that language in validation.
MIN_POSITIVES_PER_LANGUAGE = 100
#: Below this validation ROC-AUC the model is refused: a scaling fit to a model that
#: ranks at chance (a collapsed run) would still yield a threshold and a valid bundle.
MIN_ROC_AUC = 0.6


@dataclass(frozen=True)
class CalibrationResult:
    manifest: BundleManifest
    report: dict[str, Any]


def log_loss(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    losses = -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
    return float(np.sum(weights * losses) / np.sum(weights))


def fit_calibration(
    margins: np.ndarray, labels: np.ndarray, weights: np.ndarray, method: CalibrationMethod
) -> Calibration:
    """Weighted maximum likelihood of sigmoid(scale * margin + bias) (bias 0 for temperature)."""
    y = np.asarray(labels, dtype=float)
    w = np.asarray(weights, dtype=float)
    m = np.asarray(margins, dtype=float)
    before = log_loss(y, calibrated(m, Calibration()), w)
    if method == "none" or len(np.unique(y)) < 2:
        return Calibration(fitted_on={"rows": len(y), "log_loss": before})

    def loss(params: np.ndarray) -> float:
        scale = float(np.exp(params[0]))  # log-parametrised: the scale stays positive
        bias = float(params[1]) if method == "platt" else 0.0
        return log_loss(y, calibrated(m, Calibration(scale=scale, bias=bias)), w)

    start = np.zeros(2 if method == "platt" else 1)
    best = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-7})
    scale = float(np.exp(best.x[0]))
    bias = float(best.x[1]) if method == "platt" else 0.0
    return Calibration(
        method=method,
        scale=scale,
        bias=bias,
        fitted_on={"rows": len(y), "log_loss_before": before, "log_loss_after": float(best.fun)},
    )


def refuse_collapsed(
    labels: np.ndarray, margins: np.ndarray, weights: np.ndarray, min_roc_auc: float
) -> None:
    """Raise ``ModelCollapsedError`` when the margins rank validation worse than the bar."""
    if len(np.unique(labels)) < 2:
        return
    auc = float(roc_auc_score(labels, margins, sample_weight=weights))
    if auc < min_roc_auc:
        raise ModelCollapsedError(
            f"the model ranks the validation split at ROC-AUC {auc:.3f} (< {min_roc_auc}): "
            "it has not learnt the task (a collapsed or far too short run); retrain it, "
            "e.g. with --head-lr 20, more steps or a lower --lr, rather than calibrate it"
        )


def config_of(manifest: BundleManifest) -> CalibrateConfig | None:
    """The calibration a bundle was given (None: neither scaling nor chunking), to give
    another bundle the same (a distilled student its teacher's)."""
    if manifest.calibration.method == "none" and not manifest.chunking.enabled:
        return None
    report = manifest.metrics.get("calibration", {})
    return CalibrateConfig(
        method=manifest.calibration.method,
        chunking=manifest.chunking,
        target_precision=report.get("target_precision"),
    )


def calibrate_bundle(
    bundle_dir: Path,
    data_dir: Path,
    config: CalibrateConfig | None = None,
    *,
    threads: int = 2,
    min_roc_auc: float = MIN_ROC_AUC,
) -> CalibrationResult:
    """Rewrite ``bundle_dir``'s manifest with chunking, calibration and the tuned threshold."""
    config = config or CalibrateConfig()
    manifest = read_manifest(bundle_dir)
    chunking = config.chunking
    target = float(
        config.target_precision
        if config.target_precision is not None
        else manifest.metrics.get("target_precision", 0.95)
    )
    # Raw (uncalibrated) scores with the chunking that will ship: what calibration fits.
    runner = ModelRunner.from_bundle(
        bundle_dir, intra_op_threads=threads, chunking=chunking, calibration=None
    )
    validation = read_split(data_dir, "validation")
    labels = validation["label"].to_numpy(dtype=int)
    weights = (
        validation["weight"].to_numpy(dtype=float)
        if "weight" in validation
        else np.ones(len(validation))
    )
    margins = runner.margins(validation["text"].astype(str).tolist())
    refuse_collapsed(labels, margins, weights, min_roc_auc)
    calibration = fit_calibration(margins, labels, weights, config.method)
    calibration = calibration.model_copy(
        update={
            "fitted_on": {
                **calibration.fitted_on,
                "split": "validation",
                "sources": sorted(validation["source"].astype(str).unique().tolist())
                if "source" in validation
                else [],
            }
        }
    )
    scores = calibrated(margins, calibration)
    threshold = tune_threshold(labels, scores, target)
    metrics = binary_metrics(labels, scores, threshold)
    languages = validation["language"].astype(str) if "language" in validation else None
    report: dict[str, Any] = {
        "calibration": calibration.model_dump(),
        "chunking": chunking.model_dump(),
        "threshold": threshold,
        "target_precision": target,
        "validation": metrics,
        "per_language_thresholds": per_language_support(validation),
    }
    if languages is not None:
        report["validation"]["per_language"] = metrics_by_group(
            labels, scores, languages, threshold
        )
    updated = manifest.model_copy(
        update={
            "chunking": chunking,
            "calibration": calibration,
            "threshold": threshold,
            "metrics": {**manifest.metrics, "calibration": report},
        }
    )
    stored = write_manifest(bundle_dir, updated)
    return CalibrationResult(stored, report)


def per_language_support(validation: pd.DataFrame) -> dict[str, Any]:
    """Whether the validation split could support a threshold per language (it is not
    used unless every language has enough positives; one global threshold ships)."""
    if "language" not in validation:
        return {"used": False, "positives": {}}
    positives = validation[validation["label"] == 1]["language"].value_counts()
    counts = {str(k): int(v) for k, v in positives.items()}
    return {
        "used": False,
        "positives": counts,
        "reason": f"needs >= {MIN_POSITIVES_PER_LANGUAGE} validation positives per language "
        "from more than one source; one global threshold ships",
    }
