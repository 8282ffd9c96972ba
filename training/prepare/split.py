"""Balancing and the grouped, stratified train/validation/test split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

SPLITS = ("train", "validation", "test")


def balance(frame: pd.DataFrame, max_negative_ratio: float | None, seed: int) -> pd.DataFrame:
    """Per language, cap label-0 rows at ``ratio`` x label-1 rows (sampled, seeded).

    The sentiment corpus alone is several times the positive class; a cap keeps the
    model from learning mostly tweets while class weights handle what remains.
    """
    if max_negative_ratio is None:
        return frame
    parts = []
    for _, rows in frame.groupby("language", sort=True):
        positives = rows[rows["label"] == 1]
        negatives = rows[rows["label"] == 0]
        cap = max(1, round(len(positives) * max_negative_ratio))
        if len(negatives) > cap:
            negatives = negatives.sample(n=cap, random_state=seed)
        parts.extend([positives, negatives])
    return pd.concat(parts).sort_index()


def cap_sources(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows per source, sampled within each label in proportion
    (a source's label mix is kept, so the cap cannot create a one-label source)."""
    if max_rows is None:
        return frame
    parts = []
    for _, rows in frame.groupby("source", sort=True):
        if len(rows) <= max_rows:
            parts.append(rows)
            continue
        share = max_rows / len(rows)
        for _, by_label in rows.groupby("label", sort=True):
            keep = max(1, round(len(by_label) * share))
            parts.append(by_label.sample(n=min(keep, len(by_label)), random_state=seed))
    return pd.concat(parts).sort_index()


def source_weights(frame: pd.DataFrame, strength: float) -> pd.Series:
    """Row weights times (median source size / source size) ** ``strength``.

    With strength 1 every source carries the same total weight whatever its size; 0
    keeps the input weights. The result keeps the input weights' mean, so that the
    learning rate means the same with and without it.
    """
    weights = frame["weight"].astype(float)
    if strength <= 0:
        return weights
    sizes = frame.groupby("source")["text"].transform("size").astype(float)
    median = float(sizes.groupby(frame["source"]).first().median())
    balanced = weights * (median / sizes) ** strength
    return balanced * (weights.mean() / balanced.mean())


def strata(frame: pd.DataFrame) -> pd.Series:
    category = frame["category"].fillna("").replace("", "-")
    # Source too: every split (validation above all, where the threshold and the
    # calibration are fit) then mixes the real and the synthetic sources alike.
    source = frame["source"].astype(str) if "source" in frame else pd.Series("", frame.index)
    return (
        source
        + "|"
        + frame["language"]
        + "|"
        + frame["label"].astype(str)
        + "|"
        + category
        + "|"
        + frame["bucket"]
    )


def grouped_split(frame: pd.DataFrame, ratios: tuple[float, float, float], seed: int) -> pd.Series:
    """A split name per row: stratified by language/label/category/bucket, grouped.

    The split is built from K folds of StratifiedGroupKFold (K from the smallest
    ratio), so rows of one near-duplicate group never straddle two splits.
    """
    folds = max(3, round(1 / min(ratios)))
    sizes = [ratio * folds for ratio in ratios]
    counts = [round(s) for s in sizes]
    counts[0] = folds - sum(counts[1:])
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.empty(len(frame), dtype=int)
    with warnings.catch_warnings():
        # Rare strata (fewer members than folds) are expected in small tables.
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, held) in enumerate(
            splitter.split(np.zeros(len(frame)), strata(frame), frame["group"])
        ):
            fold_of[held] = fold
    boundaries = np.cumsum(counts)
    names = np.array(SPLITS)[np.searchsorted(boundaries, fold_of, side="right")]
    return pd.Series(names, index=frame.index, name="split")
