"""Intervals for small-set figures (training.evaluate.uncertainty)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.evaluate.uncertainty import auc_difference_interval, auc_interval, rate_interval


def _overlapping(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return labels, rng.normal(labels * 1.0, 1.0)  # ROC-AUC about 0.76


def test_auc_interval_holds_the_estimate_and_narrows_with_more_texts() -> None:
    small, large = _overlapping(120, 1), _overlapping(3000, 2)
    widths = []
    for labels, scores in (small, large):
        interval = auc_interval(labels, scores)
        assert interval is not None
        low, high = interval
        assert low < roc_auc_score(labels, scores) < high
        widths.append(high - low)
    # The width shrinks like 1/sqrt(n): 25 times the texts, about a fifth of the width.
    assert widths[1] < widths[0] / 3
    assert auc_interval(np.zeros(10, dtype=int), np.linspace(0, 1, 10)) is None


def test_a_perfect_ranking_has_no_spread() -> None:
    labels = np.array([0] * 30 + [1] * 30)
    assert auc_interval(labels, labels + 0.1 * np.arange(60) / 60) == (1.0, 1.0)


def test_paired_difference_is_narrower_than_either_interval() -> None:
    labels, scores = _overlapping(150, 3)
    rng = np.random.default_rng(4)
    close = scores + rng.normal(0, 0.05, len(scores))  # nearly the same model
    difference = auc_difference_interval(labels, scores, close)
    single = auc_interval(labels, scores)
    assert difference is not None and single is not None
    assert difference[0] <= 0 <= difference[1]
    assert difference[1] - difference[0] < (single[1] - single[0]) / 4
    assert auc_difference_interval(labels, scores, scores) == (0.0, 0.0)
    # A clearly worse second model: the whole interval lies above zero.
    worse = auc_difference_interval(labels, scores, scores + rng.normal(0, 2.0, len(scores)))
    assert worse is not None and worse[0] > 0


def test_rate_interval_is_wilsons() -> None:
    z = 1.959963984540054
    for flagged, n in ((0, 685), (33, 685), (7, 10)):
        p = flagged / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        interval = rate_interval(flagged, n)
        assert interval is not None
        assert interval == pytest.approx((max(0.0, centre - half), centre + half), abs=1e-9)
    assert rate_interval(0, 0) is None
