"""How texts are cut into onnxruntime runs: least padding-plus-calls cost, measured overhead."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from services.inference.batching import CPU_CALL_OVERHEAD_TOKENS, measure_overhead, plan
from services.inference.runner import ModelRunner


def _cost(groups: list[range], lengths: list[int], overhead: float) -> float:
    return sum(overhead + len(g) * max(1, lengths[g[-1]]) for g in groups)


def _brute_force(lengths: list[int], max_rows: int, overhead: float) -> float:
    """The least cost over every way of cutting the sorted texts into contiguous runs."""
    n = len(lengths)
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0] + [i + 1 for i, cut in enumerate(cuts) if cut] + [n]
        groups = [range(a, b) for a, b in itertools.pairwise(bounds)]
        if all(len(g) <= max_rows for g in groups):
            best = min(best, _cost(groups, lengths, overhead))
    return best


def test_the_plan_is_the_cheapest_cut_of_the_sorted_texts() -> None:
    rng = random.Random(3)
    for _ in range(60):
        lengths = sorted(rng.randint(1, 128) for _ in range(rng.randint(1, 9)))
        max_rows, overhead = rng.randint(1, 6), rng.choice([0.0, 5.0, 30.0, 200.0])
        groups = plan(lengths, max_rows, overhead)
        # Every text once, in order, no run over max_rows.
        assert [i for g in groups for i in g] == list(range(len(lengths)))
        assert all(1 <= len(g) <= max_rows for g in groups)
        assert _cost(groups, lengths, overhead) == pytest.approx(
            _brute_force(lengths, max_rows, overhead)
        )


def test_overhead_decides_between_wide_runs_and_no_padding() -> None:
    lengths = [5, 6, 40, 41, 120]
    # Calls cost nothing: a text never pays for another's length; equal lengths still share.
    assert plan(lengths, 32, 0.0) == [range(i, i + 1) for i in range(5)]
    assert plan([7, 7, 7], 32, 0.0) == [range(0, 3)]
    # Calls cost more than any padding: fixed chunks of max_rows, as plain chunking gives.
    assert plan(lengths, 2, 1e9) == [range(0, 2), range(2, 4), range(4, 5)]
    # In between: the short pair, the middle pair and the long text apart.
    assert plan(lengths, 32, 30.0) == [range(0, 2), range(2, 4), range(4, 5)]
    assert plan([], 32, 30.0) == []


def test_unsorted_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        plan([3, 1], 4, 10.0)


def test_the_overhead_is_fitted_from_timed_shapes() -> None:
    """A fake model costing 20 ms a call plus 0.1 ms a position, on a fake clock."""
    now = [0.0]
    calls: list[tuple[int, int]] = []

    def run(ids: np.ndarray, mask: np.ndarray) -> None:
        calls.append(ids.shape)
        assert (mask == 1).all()
        now[0] += 0.020 + 0.0001 * ids.size

    overhead = measure_overhead(run, token_id=5, clock=lambda: now[0])
    assert overhead == pytest.approx(200.0)
    assert len(set(calls)) == 2  # two shapes, each timed more than once
    # A model whose calls all cost the same (no per-position cost): batch wide.
    flat = measure_overhead(lambda ids, mask: now.__setitem__(0, now[0] + 0.01), 5, lambda: now[0])
    assert flat >= 512


def test_runner_cuts_runs_by_the_plan(tiny_bundle: Path) -> None:
    """Free calls: each distinct length is scored alone, exactly as a batch of one;
    costly calls: one run of the whole micro-batch."""
    texts = ["ok", "a somewhat longer text than that one", "short one here", "x " * 60]
    alone = ModelRunner.from_bundle(tiny_bundle, call_overhead_tokens=0.0)
    assert len({len(e.ids) for e in alone.encode(texts)}) == len(texts)  # distinct lengths
    wide = ModelRunner.from_bundle(tiny_bundle, call_overhead_tokens=1e9)
    runs: dict[str, list[int]] = {"alone": [], "wide": []}
    for name, runner in (("alone", alone), ("wide", wide)):
        original = runner.run_batch

        def counting(batch, original=original, name=name):  # type: ignore[no-untyped-def]
            runs[name].append(len(batch))
            return original(batch)

        runner.run_batch = counting  # type: ignore[method-assign]
    separately = [alone.predict_proba([t])[0] for t in texts]
    runs["alone"].clear()
    together = alone.predict_proba(texts)
    wide.predict_proba(texts)
    assert runs["alone"] == [1, 1, 1, 1]
    assert runs["wide"] == [4]
    np.testing.assert_allclose(together, separately, rtol=0, atol=1e-6)
    # Unset: a fixed default, so that the cuts (and int8 scores) never move with timing.
    assert ModelRunner.from_bundle(tiny_bundle).call_overhead_tokens == CPU_CALL_OVERHEAD_TOKENS
    assert alone.measure_call_overhead() >= 0
