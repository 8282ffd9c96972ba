"""How far a figure on a small set can be trusted: 95 % intervals for ROC-AUC (stratified
bootstrap), for a difference of two models' ROC-AUC on the same texts (paired bootstrap)
and for a flag rate (Wilson). Torch-free.

The dev sets are small (114 interview transcripts, 526 tweets): a goal 0.002 away from
the point estimate, or a drop between two models, means little without its interval.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest, rankdata

#: Resamples per interval; fixed seed so that a report is reproducible.
RESAMPLES = 1000
LEVEL = 0.95
SEED = 0

Interval = tuple[float, float]


def _resampled_aucs(
    labels: np.ndarray, scores: list[np.ndarray], resamples: int, seed: int
) -> list[np.ndarray] | None:
    """ROC-AUC of each score vector on the same stratified resamples (positives and
    negatives drawn separately, so every resample keeps both classes and their counts)."""
    y = np.asarray(labels, dtype=int)
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(positives) == 0 or len(negatives) == 0:
        return None
    rng = np.random.default_rng(seed)
    drawn = np.concatenate(
        [
            rng.choice(positives, size=(resamples, len(positives))),
            rng.choice(negatives, size=(resamples, len(negatives))),
        ],
        axis=1,
    )
    n1, n0 = len(positives), len(negatives)
    out = []
    for values in scores:
        # Mann-Whitney: AUC from the positives' rank sum (ties share their mean rank).
        ranks = rankdata(np.asarray(values, dtype=float)[drawn], axis=1)
        out.append((ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0))
    return out


def _percentiles(values: np.ndarray, level: float) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def auc_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> Interval | None:
    """Percentile interval of ROC-AUC; None on a one-label set."""
    aucs = _resampled_aucs(labels, [scores], resamples, seed)
    return None if aucs is None else _percentiles(aucs[0], level)


def auc_difference_interval(
    labels: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
) -> Interval | None:
    """Interval of ROC-AUC(first) - ROC-AUC(second) on the same texts, both models scored
    on each resample (paired: what the texts share cancels out)."""
    aucs = _resampled_aucs(labels, [first, second], resamples, seed)
    return None if aucs is None else _percentiles(aucs[0] - aucs[1], level)


def rate_interval(flagged: int, n: int, *, level: float = LEVEL) -> Interval | None:
    """Wilson interval of a share, e.g. the false-flag rate of an all-negative set."""
    if n == 0:
        return None
    ci = binomtest(flagged, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
