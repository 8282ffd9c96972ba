"""Latency measured properly: warm-up, repeated runs, batch 1 and batched, dynamic padding."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def time_calls(
    run: Callable[[Sequence[str]], Any],
    texts: Sequence[str],
    *,
    batch_size: int,
    runs: int = 3,
    warmup: int = 5,
) -> dict[str, Any]:
    """Seconds per call over ``runs`` passes of the texts; texts sorted by length once."""
    ordered = sorted(texts, key=len)  # length-sorted batches pad little
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    for batch in batches[:warmup]:
        run(batch)
    samples: list[float] = []
    for _ in range(runs):
        for batch in batches:
            started = time.perf_counter()
            run(batch)
            samples.append(time.perf_counter() - started)
    per_call = np.asarray(samples)
    total = float(per_call.sum())
    return {
        "batch_size": batch_size,
        "calls": len(samples),
        "texts_per_s": runs * len(texts) / total if total else float("inf"),
        "ms_per_call_p50": float(np.percentile(per_call, 50) * 1000),
        "ms_per_call_p95": float(np.percentile(per_call, 95) * 1000),
        "ms_per_call_mean": float(per_call.mean() * 1000),
        "samples_ms": (per_call * 1000).round(3).tolist(),
    }
