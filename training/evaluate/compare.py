"""PyTorch vs ONNX fp32 vs quantized ONNX on the same split: metrics, latency, plots."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from schemas.bundle import MODEL_FILE, TOKENIZER_FILE, read_manifest
from services.inference.runner import ModelRunner
from training.evaluate.latency import time_calls
from training.evaluate.metrics import binary_metrics, format_metrics

Scorer = Callable[[Sequence[str]], np.ndarray]


def torch_scorer(model_dir: Path, max_length: int, normalization: Any) -> Scorer:
    from training.export.onnx_export import load_for_export
    from training.finetune.scoring import torch_scores
    from training.tokenizer_loading import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = load_for_export(model_dir)

    def score(texts: Sequence[str]) -> np.ndarray:
        return torch_scores(
            model,
            tokenizer,
            texts,
            max_length=max_length,
            normalization=normalization,
            batch_size=max(1, len(texts)),
        )

    return score


def scorers(model_dir: Path, fp32_onnx: Path, bundle: Path) -> dict[str, Scorer]:
    manifest = read_manifest(bundle)
    norm, max_length = manifest.normalization, manifest.max_sequence_length
    fp32 = ModelRunner(
        fp32_onnx, bundle / TOKENIZER_FILE, normalization=norm, max_length=max_length
    )
    int8 = ModelRunner(
        bundle / MODEL_FILE, bundle / TOKENIZER_FILE, normalization=norm, max_length=max_length
    )
    return {
        "pytorch": torch_scorer(model_dir, manifest.max_sequence_length, manifest.normalization),
        "onnx_fp32": lambda texts: fp32.predict_proba(texts, batch_size=len(texts)),
        "onnx_int8": lambda texts: int8.predict_proba(texts, batch_size=len(texts)),
    }


def score_all(score: Scorer, texts: list[str], batch_size: int = 32) -> np.ndarray:
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty(len(texts))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out[chunk] = score([texts[i] for i in chunk])
    return out


def compare(
    model_dir: Path,
    fp32_onnx: Path,
    bundle: Path,
    test: pd.DataFrame,
    out_dir: Path,
    *,
    latency_texts: int = 200,
    batch_size: int = 32,
    runs: int = 3,
) -> dict[str, Any]:
    manifest = read_manifest(bundle)
    texts = test["text"].astype(str).tolist()
    labels = test["label"].to_numpy(dtype=int)
    sample = texts[:latency_texts]
    results: dict[str, Any] = {}
    for name, score in scorers(model_dir, fp32_onnx, bundle).items():
        probabilities = score_all(score, texts, batch_size)
        results[name] = {
            "metrics": binary_metrics(labels, probabilities, manifest.threshold),
            "latency_batch_1": time_calls(score, sample, batch_size=1, runs=runs),
            f"latency_batch_{batch_size}": time_calls(
                score, sample, batch_size=batch_size, runs=runs
            ),
            "scores": probabilities.tolist(),
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.txt").write_text(format_comparison(results, batch_size) + "\n")
    slim = {n: {k: v for k, v in r.items() if k != "scores"} for n, r in results.items()}
    (out_dir / "comparison.json").write_text(json.dumps(slim, indent=2) + "\n")
    write_plots(results, labels, out_dir)
    return slim


def format_comparison(results: dict[str, Any], batch_size: int) -> str:
    lines = ["PyTorch vs ONNX fp32 vs quantized ONNX (same split, bundle threshold)", ""]
    for name, result in results.items():
        b1, bn = result["latency_batch_1"], result[f"latency_batch_{batch_size}"]
        lines += [
            format_metrics(result["metrics"], f"== {name}"),
            f"latency batch 1: p50 {b1['ms_per_call_p50']:.2f} ms, p95 "
            f"{b1['ms_per_call_p95']:.2f} ms, {b1['texts_per_s']:.1f} texts/s",
            f"latency batch {batch_size}: p50 {bn['ms_per_call_p50']:.2f} ms per batch, "
            f"{bn['texts_per_s']:.1f} texts/s",
            "",
        ]
    return "\n".join(lines)


def write_plots(results: dict[str, Any], labels: np.ndarray, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    names = list(results)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        cm = results[name]["metrics"]["confusion_matrix"]
        grid = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
        ax.imshow(grid, cmap="Blues")
        for (i, j), value in np.ndenumerate(grid):
            # White on the dark cells, so every count stays readable.
            color = "white" if value > grid.max() / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color)
        ax.set(title=name, xlabel="predicted", ylabel="true", xticks=[0, 1], yticks=[0, 1])
    fig.tight_layout()
    fig.savefig(out_dir / "confusion_matrices.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([results[n]["latency_batch_1"]["samples_ms"] for n in names], tick_labels=names)
    ax.set(title="Latency per text, batch 1", ylabel="ms")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_batch1.png", dpi=90)
    plt.close(fig)

    if len(np.unique(labels)) == 2:
        fig, (roc, pr) = plt.subplots(1, 2, figsize=(10, 4))
        for name in names:
            scores = np.asarray(results[name]["scores"])
            fpr, tpr, _ = roc_curve(labels, scores)
            precision, recall, _ = precision_recall_curve(labels, scores)
            roc.plot(fpr, tpr, label=name)
            pr.plot(recall, precision, label=name)
        roc.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
        pr.set(title="Precision-recall", xlabel="recall", ylabel="precision")
        roc.legend()
        pr.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "roc_pr_curves.png", dpi=90)
        plt.close(fig)
