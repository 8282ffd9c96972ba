"""Throughput of a model bundle: tokens/s and texts/s (not a test).

Compares, in one run and on the same texts (tokenisation included):
  * batch 1, every text padded to 512 tokens (the original project's method),
  * batch 1 at exact length,
  * length-sorted dynamic padding at several batch sizes (the best is reported),
and prints the ratio best / padded-512. Tokens are real (non-padding) tokens.

    .venv/bin/python benchmarks/bench_bundle.py var/training/bundle \
        --data var/training/data/test.csv --texts 300
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.inference.runner import ModelRunner
from training.prepare.tables import read_table


def measure(
    run: Callable[[Sequence[str]], object], batches: list[list[str]], tokens: int, repeats: int
) -> tuple[float, float]:
    for batch in batches[:3]:  # warm-up: first calls allocate and pick kernels
        run(batch)
    started = time.perf_counter()
    for _ in range(repeats):
        for batch in batches:
            run(batch)
    seconds = (time.perf_counter() - started) / repeats
    texts = sum(len(b) for b in batches)
    return texts / seconds, tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "training" / "sample_data" / "sample.csv",
    )
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", default="8,16,32,64")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import onnxruntime

    onnxruntime.set_default_logger_severity(4)  # the 512 probe may fail on small models
    scorer = ModelRunner.from_bundle(args.bundle, intra_op_threads=args.threads)
    manifest = scorer.manifest
    texts = read_table(args.data)[args.text_column].astype(str).tolist()[: args.texts]
    tokens = sum(len(e.ids) for e in scorer.encode(texts))
    print(
        f"bundle {manifest.model_version} ({manifest.base_model}); {len(texts)} texts, "
        f"{tokens / len(texts):.1f} tokens/text, {args.threads} threads"
    )

    def padded(batch: Sequence[str], width: int) -> None:
        ids = [e.ids for e in scorer.encode(batch)]
        full = np.full((len(ids), width), scorer.pad_id, dtype=np.int64)
        mask = np.zeros_like(full)
        for row, seq in enumerate(ids):
            full[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        scorer.run_padded(full, mask)

    singles = [[t] for t in texts]
    rows: list[tuple[str, float, float]] = []
    width = 512
    try:
        padded(texts[:1], width)
    except Exception:  # a model with fewer positions (the tiny test model)
        width = manifest.max_sequence_length
    rows.append(
        (
            f"batch 1, padded to {width}",
            *measure(lambda b: padded(b, width), singles, tokens, args.repeats),
        )
    )
    rows.append(
        (
            "batch 1, exact length",
            *measure(lambda b: scorer.predict_proba(b, 1), singles, tokens, args.repeats),
        )
    )
    ordered = sorted(texts, key=len)
    best = ("", 0.0, 0.0)
    for size in (int(s) for s in args.batch_sizes.split(",")):
        batches = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        row = (
            f"batch {size}, length-sorted dynamic padding",
            *measure(lambda b, n=size: scorer.predict_proba(b, n), batches, tokens, args.repeats),
        )
        rows.append(row)
        best = max(best, row, key=lambda r: r[1])
    for name, texts_s, tokens_s in rows:
        print(f"{name:<45} {texts_s:9.1f} texts/s {tokens_s:11.1f} tokens/s")
    print(f"best ({best[0]}) / padded-{width} batch 1: {best[1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
