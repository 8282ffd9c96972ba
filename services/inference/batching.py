"""Which texts share an onnxruntime run: micro-batches planned from a cost model.

A run of ``n`` texts padded to width ``w`` costs about ``overhead + n * w`` token-times
on a CPU: a fixed cost per call (operator launches, thread wake-ups) plus work that grows
with every position, padding included. Measured on a 2-core CPU the fixed part is worth
only 35-60 positions, so one long text padded into a batch of short ones wastes far more
than a separate call costs; on a GPU the fixed part is large and batches should be wide.
Fixed-size chunks of the length-sorted texts ignore this: a small stripe of mixed
lengths becomes one run padded to its longest text, which measured *slower per text*
than scoring the texts one by one.

:func:`plan` splits texts, sorted by length, into the contiguous groups of least total
cost (an exact dynamic programme, ``O(n * max_rows)``); :func:`measure_overhead` fits the
fixed part on the machine at hand (the benchmarks print it; set it where the default does
not fit, e.g. on a GPU).
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

#: The fixed cost of a call in padded positions when none is configured: measured 35-51
#: for the 12-layer e5-small bundle on 2 AVX-512 cores (:func:`measure_overhead`). A fixed
#: number, not one measured at start-up: a text's int8 score depends slightly on its
#: run-mates (one activation range per run), so the cuts must not move with timing noise.
CPU_CALL_OVERHEAD_TOKENS = 32.0
#: Calls timed per shape when measuring (the median is kept: robust to a busy core).
_REPEATS = 3
#: The two shapes the cost line is fitted through: (rows, width).
_SMALL = (1, 8)
_LARGE = (8, 64)


def plan(lengths: Sequence[int], max_rows: int, overhead_tokens: float) -> list[range]:
    """Micro-batches for texts of ``lengths`` *sorted ascending*: contiguous index ranges
    of at most ``max_rows`` texts that minimise ``sum(overhead + rows * longest)``.

    With ``overhead_tokens`` large this is fixed chunks of ``max_rows``; with 0, one text
    per run whenever padding would cost anything."""
    n = len(lengths)
    if any(a > b for a, b in itertools.pairwise(lengths)):
        raise ValueError("lengths must be sorted ascending")
    # best[j]: least cost of the first j texts; cut[j]: where their last group starts.
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        width = max(1, lengths[end - 1])  # the group's longest: the last, as sorted
        for start in range(max(0, end - max_rows), end):
            cost = best[start] + overhead_tokens + (end - start) * width
            # Starts ascend and "<" keeps the first: on a tie, fewer and wider runs.
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups = []
    end = n
    while end > 0:
        groups.append(range(cut[end], end))
        end = cut[end]
    return groups[::-1]


def measure_overhead(
    run: Callable[[np.ndarray, np.ndarray], object],
    token_id: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """The fixed cost of one run, in token-times, fitted through two shapes timed with
    ``run(input_ids, attention_mask)``; never negative."""

    def timed(rows: int, width: int) -> float:
        ids = np.full((rows, width), token_id, dtype=np.int64)
        mask = np.ones_like(ids)
        run(ids, mask)  # first call of a shape allocates
        times = []
        for _ in range(_REPEATS):
            started = clock()
            run(ids, mask)
            times.append(clock() - started)
        return statistics.median(times)

    small, large = timed(*_SMALL), timed(*_LARGE)
    small_tokens, large_tokens = _SMALL[0] * _SMALL[1], _LARGE[0] * _LARGE[1]
    per_token = (large - small) / (large_tokens - small_tokens)
    if per_token <= 0:  # timing noise on a tiny model: every call costs the same
        return float(large_tokens)
    return max(0.0, small / per_token - small_tokens)
