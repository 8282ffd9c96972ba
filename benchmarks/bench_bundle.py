"""Throughput of model bundles: texts/s and tokens/s (not a test).

For each bundle, in one run and on the same texts (tokenisation included):
  * batch 1, every text padded to 512 tokens (the original project's method),
  * batch 1 at exact length,
  * length-sorted dynamic padding at several batch sizes (the best is reported),
and the ratio best / padded-512. Then a length sweep: texts cut to about 10, 50, 200
and 500 tokens, with batch-1 latency (p50, p95) and the best batched throughput, so
that one sees how the cost grows with length (texts longer than the bundle's max
length are scored as the service scores them: windows when chunking is on, else
truncated; the "model tokens" column says what the model saw). With several bundles
(e.g. the teacher, then the distilled fast bundle) each later one is also compared
with the first: best throughput ratio, and best / the first's padded-512 baseline,
from ``--rounds`` interleaved rounds (each bundle's best batch size and the first's
padded baseline measured in turn, medians reported), since this machine's speed drifts
by 10-20 % within minutes and bundles measured one after the other inherit that drift.
Tokens are real (non-padding) tokens.

    .venv/bin/python benchmarks/bench_bundle.py var/training/bundle \
        var/training/bundle-distilled --data var/training/data/test.csv --texts 300
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.inference.runner import ModelRunner, windows
from training.prepare.tables import read_table


@dataclass(frozen=True)
class Row:
    name: str
    texts_s: float
    tokens_s: float
    #: Texts per call of the length-sorted rows (None: the batch-1 baselines).
    batch: int | None = None


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


def model_tokens(scorer: ModelRunner, texts: Sequence[str]) -> int:
    """Tokens the model runs on: the windows when chunking is on, else the truncated ids."""
    total = 0
    for e in scorer.encode(texts):
        if scorer.chunking.enabled:
            spans = windows(e.ids, e.special_tokens_mask, scorer.max_length, scorer.chunking)
            total += sum(len(w) for w in spans)
        else:
            total += len(e.ids)
    return total


def sorted_batches(texts: Sequence[str], size: int) -> list[list[str]]:
    ordered = sorted(texts, key=len)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def best_batched(
    scorer: ModelRunner, texts: Sequence[str], sizes: Sequence[int], tokens: int, repeats: int
) -> list[Row]:
    rows = []
    for size in sizes:

        def run(batch: Sequence[str], n: int = size) -> object:
            return scorer.predict_proba(batch, n)

        rate = measure(run, sorted_batches(texts, size), tokens, repeats)
        rows.append(Row(f"batch {size}, length-sorted dynamic padding", *rate, batch=size))
    return rows


def padded_to(scorer: ModelRunner, width: int) -> Callable[[Sequence[str]], None]:
    """The original method: every text padded to ``width`` tokens."""

    def run(batch: Sequence[str]) -> None:
        ids = [e.ids[:width] for e in scorer.encode(batch)]
        full = np.full((len(ids), width), scorer.pad_id, dtype=np.int64)
        mask = np.zeros_like(full)
        for row, seq in enumerate(ids):
            full[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        scorer.run_padded(full, mask)

    return run


def bench_bundle(
    scorer: ModelRunner, texts: list[str], sizes: Sequence[int], repeats: int
) -> tuple[list[Row], Row, int]:
    """(rows, best row, padded width) for one bundle on ``texts``."""
    tokens = sum(len(e.ids) for e in scorer.encode(texts))
    singles = [[t] for t in texts]
    width = 512
    try:
        padded_to(scorer, width)(texts[:1])
    except Exception:  # a model with fewer positions (the tiny test model)
        width = scorer.manifest.max_sequence_length
    rows = [
        Row(
            f"batch 1, padded to {width}",
            *measure(padded_to(scorer, width), singles, tokens, repeats),
        ),
        Row(
            "batch 1, exact length",
            *measure(lambda b: scorer.predict_proba(b, 1), singles, tokens, repeats),
        ),
    ]
    batched = best_batched(scorer, texts, sizes, tokens, repeats)
    rows += batched
    return rows, max(batched, key=lambda r: r.texts_s), width


def texts_of_length(
    pool: Sequence[str], scorer: ModelRunner, length: int, n: int
) -> tuple[list[str], float]:
    """``n`` texts of about ``length`` tokens (special tokens included), cut at token
    boundaries from the pool's texts joined end to end (wrapping round if short), and
    their mean length untruncated."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(scorer.tokenizer.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    joined = " ".join(pool)
    encoding = tokenizer.encode(joined, add_special_tokens=False)
    offsets = encoding.offsets
    body = max(1, length - 2)  # [CLS]/<s> and [SEP]/</s>
    while len(offsets) < body * 2:
        joined = f"{joined} {joined}"
        offsets = tokenizer.encode(joined, add_special_tokens=False).offsets
    starts = np.linspace(0, len(offsets) - body, num=n, dtype=int)
    texts = [joined[offsets[s][0] : offsets[s + body - 1][1]] for s in starts]
    return texts, float(np.mean([len(e.ids) for e in tokenizer.encode_batch(texts)]))


@dataclass(frozen=True)
class SweepPoint:
    """One length of the sweep: what was asked, measured and seen, and how fast."""

    length: int
    measured: float
    model_tokens: float
    p50_ms: float
    p95_ms: float
    batch1_texts_s: float
    best_batch: str
    texts_s: float
    tokens_s: float


def length_sweep(
    scorer: ModelRunner,
    pool: Sequence[str],
    lengths: Sequence[int],
    sizes: Sequence[int],
    n: int,
    repeats: int,
) -> list[SweepPoint]:
    points = []
    for length in lengths:
        texts, measured = texts_of_length(pool, scorer, length, n)
        tokens = model_tokens(scorer, texts)
        scorer.predict_proba(texts[:2], 1)  # warm-up at this shape
        samples = []
        for text in texts:
            started = time.perf_counter()
            scorer.predict_proba([text], 1)
            samples.append(time.perf_counter() - started)
        ms = np.asarray(samples) * 1000
        best = max(best_batched(scorer, texts, sizes, tokens, repeats), key=lambda r: r.texts_s)
        points.append(
            SweepPoint(
                length,
                measured,
                tokens / len(texts),
                float(np.percentile(ms, 50)),
                float(np.percentile(ms, 95)),
                float(1000 / ms.mean()),
                best.name.split(",")[0],
                best.texts_s,
                best.tokens_s,
            )
        )
    return points


def format_sweep(points: Sequence[SweepPoint]) -> list[str]:
    lines = [
        f"{'tokens':>6} {'measured':>8} {'model tok':>9} {'b1 p50 ms':>9} {'b1 p95 ms':>9} "
        f"{'b1 texts/s':>10} {'best batch':>10} {'texts/s':>9} {'tokens/s':>10}"
    ]
    for p in points:
        lines.append(
            f"{p.length:>6} {p.measured:>8.1f} {p.model_tokens:>9.1f} {p.p50_ms:>9.2f} "
            f"{p.p95_ms:>9.2f} {p.batch1_texts_s:>10.1f} {p.best_batch:>10} "
            f"{p.texts_s:>9.1f} {p.tokens_s:>10.1f}"
        )
    return lines


def plot_sweeps(sweeps: Sequence[tuple[str, list[SweepPoint]]], path: Path) -> None:
    """How cost grows with length, per bundle: best batched texts/s and batch-1 latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (speed, latency) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in sweeps:
        lengths = [p.length for p in points]
        (line,) = speed.plot(lengths, [p.texts_s for p in points], marker="o", label=name)
        colour = line.get_color()  # one colour per bundle in both panels
        p50 = [p.p50_ms for p in points]
        latency.plot(lengths, p50, marker="o", color=colour, label=f"{name} p50")
        p95 = [p.p95_ms for p in points]
        latency.plot(lengths, p95, linestyle="--", color=colour, label=f"{name} p95")
    for ax in (speed, latency):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("text length (tokens)")
        ax.legend(fontsize=7)
    speed.set_ylabel("texts/s, best batch (length-sorted)")
    latency.set_ylabel("ms per text, batch 1")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", type=Path, nargs="+", help="the reference bundle first")
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
    parser.add_argument(
        "--lengths", default="10,50,200,500", help="token lengths of the sweep ('' skips it)"
    )
    parser.add_argument("--sweep-texts", type=int, default=32, help="texts per sweep length")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the side-by-side figures"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "var" / "bench" / "length_sweep.png",
    )
    args = parser.parse_args()

    import onnxruntime

    onnxruntime.set_default_logger_severity(4)  # the 512 probe may fail on small models
    texts = read_table(args.data)[args.text_column].astype(str).tolist()[: args.texts]
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    lengths = [int(s) for s in args.lengths.split(",") if s]
    # (bundle, scorer, padded batch-1 row, best row, padded width)
    results: list[tuple[str, ModelRunner, Row, Row, int]] = []
    # A list, not a dict by name: two bundle folders may share a name.
    sweeps: list[tuple[str, list[SweepPoint]]] = []
    for path in args.bundles:
        scorer = ModelRunner.from_bundle(path, intra_op_threads=args.threads)
        manifest = scorer.manifest
        tokens = sum(len(e.ids) for e in scorer.encode(texts))
        print(
            f"\n== {path.name}: bundle {manifest.model_version} ({manifest.base_model}); "
            f"{len(texts)} texts, {tokens / len(texts):.1f} tokens/text, max length "
            f"{manifest.max_sequence_length}, chunking "
            f"{'on' if manifest.chunking.enabled else 'off'}, {args.threads} threads"
        )
        rows, best, width = bench_bundle(scorer, texts, sizes, args.repeats)
        for row in rows:
            print(f"{row.name:<45} {row.texts_s:9.1f} texts/s {row.tokens_s:11.1f} tokens/s")
        print(f"best ({best.name}) / padded-{width} batch 1: {best.texts_s / rows[0].texts_s:.1f}x")
        results.append((path.name, scorer, rows[0], best, width))
        if lengths:
            print(f"\nlength sweep ({args.sweep_texts} texts per length):")
            points = length_sweep(scorer, texts, lengths, sizes, args.sweep_texts, args.repeats)
            sweeps.append((path.name, points))
            print("\n".join(format_sweep(points)))
    if sweeps:
        plot_sweeps(sweeps, args.plot)
        print(f"\nplot of cost against length: {args.plot}")
    if len(results) > 1:
        side_by_side(results, texts, args.rounds, args.repeats)


def side_by_side(
    results: list[tuple[str, ModelRunner, Row, Row, int]],
    texts: list[str],
    rounds: int,
    repeats: int,
) -> None:
    """Each bundle's best batch size and the first's padded baseline, measured in turn
    for ``rounds`` rounds: medians, and ratios of medians."""
    name, first, _, _, width = results[0]
    singles = [[t] for t in texts]
    tokens = sum(len(e.ids) for e in first.encode(texts))
    original: list[float] = []
    rates: dict[str, list[float]] = {r[0]: [] for r in results}
    for _ in range(rounds):
        original.append(measure(padded_to(first, width), singles, tokens, repeats)[0])
        for bundle, scorer, _, best, _ in results:
            assert best.batch is not None  # the best is always a batched row
            (row,) = best_batched(scorer, texts, [best.batch], tokens, repeats)
            rates[bundle].append(row.texts_s)

    def spread(values: list[float]) -> str:
        return f"{np.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    baseline = float(np.median(original))
    reference = float(np.median(rates[name]))
    print(f"\n== side by side: {rounds} interleaved rounds, median (min-max) texts/s")
    print(f"{name}, batch 1 padded to {width} (the original method): {spread(original)}")
    for bundle, _, _, best, _ in results:
        median = float(np.median(rates[bundle]))
        print(
            f"{bundle}, {best.name.split(',')[0]}: {spread(rates[bundle])} = "
            f"{median / reference:.2f}x {name}'s best, {median / baseline:.1f}x the original method"
        )


if __name__ == "__main__":
    main()
