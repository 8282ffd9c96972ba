"""Exact and near-duplicate detection with MinHash + LSH (numpy only).

Two similarity levels: at ``drop_threshold`` a text is a near-duplicate and only the
first (highest-weight) copy survives; at ``group_threshold`` texts are only grouped,
so the split keeps them on one side and the test split cannot reward memorisation.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from schemas.text import dedup_key

_PRIME = np.uint64((1 << 61) - 1)
_PERMUTATIONS = 64
_BANDS = 32  # 2 rows per band: candidates from about Jaccard 0.2, verified exactly below


def shingles(key: str) -> set[int]:
    words = key.split()
    grams = {" ".join(words[i : i + 3]) for i in range(max(1, len(words) - 2))}
    # Character 5-grams make short texts comparable where word 3-grams are too few.
    grams |= {key[i : i + 5] for i in range(max(1, len(key) - 4))}
    return {zlib.crc32(g.encode("utf-8")) for g in grams}


def _signatures(sets: list[set[int]], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 61, size=_PERMUTATIONS, dtype=np.uint64)
    b = rng.integers(0, 1 << 61, size=_PERMUTATIONS, dtype=np.uint64)
    out = np.empty((len(sets), _PERMUTATIONS), dtype=np.uint64)
    for i, values in enumerate(sets):
        x = np.fromiter(values, dtype=np.uint64, count=len(values))
        # (a*x + b) mod p with wrap-around is a fine hash family for MinHash here.
        out[i] = ((np.outer(a, x) + b[:, None]) % _PRIME).min(axis=1)
    return out


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def similar_pairs(keys: list[str], threshold: float, seed: int = 0) -> list[tuple[int, int, float]]:
    """Pairs (i, j, jaccard) with Jaccard >= threshold, found through LSH candidates."""
    sets = [shingles(k) for k in keys]
    if len(sets) < 2:
        return []
    signatures = _signatures(sets, seed)
    rows = _PERMUTATIONS // _BANDS
    candidates: set[tuple[int, int]] = set()
    for band in range(_BANDS):
        buckets: dict[bytes, list[int]] = {}
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        for i in range(len(keys)):
            buckets.setdefault(block[i].tobytes(), []).append(i)
        for members in buckets.values():
            if 1 < len(members) <= 200:  # a huge bucket is boilerplate, not similarity
                candidates.update(
                    (members[x], members[y])
                    for x in range(len(members))
                    for y in range(x + 1, len(members))
                )
    pairs = []
    for i, j in candidates:
        jaccard = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        if jaccard >= threshold:
            pairs.append((i, j, jaccard))
    return pairs


def deduplicate(
    frame: pd.DataFrame, *, drop_threshold: float, group_threshold: float, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop exact and near duplicates; add a ``group`` column for the grouped split.

    Rows are ordered by descending input weight first, so the copy that survives comes
    from the most trusted input. Exact duplicates with conflicting labels are dropped
    entirely: neither label can be trusted.
    """
    ordered = frame.sort_values("weight", ascending=False, kind="stable").copy()
    ordered["_key"] = ordered["text"].map(dedup_key)
    conflicting = ordered.groupby("_key")["label"].transform("nunique") > 1
    exact = ordered.duplicated("_key") & ~conflicting
    kept = ordered[~conflicting & ~exact].reset_index(drop=True)

    keys = kept["_key"].tolist()
    pairs = similar_pairs(keys, group_threshold, seed)
    groups = _UnionFind(len(keys))
    near: set[int] = set()
    labels = kept["label"].to_numpy()
    for i, j, jaccard in pairs:
        groups.union(i, j)
        # Near-identical texts with different labels are contrastive pairs: keep both.
        if jaccard >= drop_threshold and labels[i] == labels[j]:
            near.add(max(i, j))  # the later (lower-weight) copy goes
    kept["group"] = [groups.find(i) for i in range(len(keys))]
    result = kept.drop(index=sorted(near)).drop(columns="_key").reset_index(drop=True)
    counts = {
        "exact_duplicates": int(exact.sum()),
        "conflicting_label_duplicates": int(conflicting.sum()),
        "near_duplicates": len(near),
    }
    return result, counts
