"""Quantization recipes side by side on a fine-tuned model (not a test).

Per recipe: label agreement with PyTorch on the validation split, throughput at the
best batch size against fp32 ONNX measured in the same run (medians of interleaved
rounds), graph size. Writes
recipes.txt / recipes.json into --out and prints the table.

    .venv/bin/python benchmarks/bench_quantization.py var/training/model \
        var/training/data --out var/training/recipes --recipes all
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.evaluate.recipes import (
    compare_recipes,
    ffn_output_sensitivity,
    layer_sensitivity,
    pick,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="fine-tuned model directory")
    parser.add_argument("data", type=Path, help="prepared splits it was trained on")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--recipes", default="all", help="'all' or names, comma-separated")
    parser.add_argument(
        "--sensitivity",
        default=None,
        metavar="RECIPE:LAYERS",
        help="also RECIPE with one layer at a time left fp32, e.g. fused-per-channel:12",
    )
    parser.add_argument(
        "--ffn-sensitivity",
        type=int,
        default=None,
        metavar="LAYERS",
        help="also one layer at a time with its FFN output 8-bit weight-only, the rest int8",
    )
    parser.add_argument("--bench-texts", type=int, default=300)
    parser.add_argument("--batch-sizes", default="8,16,32,64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved timing rounds (medians reported)"
    )
    args = parser.parse_args()

    recipes = pick(args.recipes)
    if args.sensitivity:
        base, layers = args.sensitivity.split(":")
        recipes |= layer_sensitivity(base, int(layers))
    if args.ffn_sensitivity:
        recipes |= ffn_output_sensitivity(args.ffn_sensitivity)
    compare_recipes(
        args.model,
        args.data,
        args.out,
        recipes,
        bench_texts=args.bench_texts,
        batch_sizes=[int(s) for s in args.batch_sizes.split(",")],
        repeats=args.repeats,
        threads=args.threads,
        rounds=args.rounds,
    )
    print((args.out / "recipes.txt").read_text())


if __name__ == "__main__":
    main()
