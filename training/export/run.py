"""``export_bundle``: the short orchestrator from a fine-tuned model to a checked bundle."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from schemas.bundle import BundleManifest
from schemas.errors import ConfigurationError
from services.inference.runner import ModelRunner
from training.bundle_builder import bundle_tokenizer, write_bundle
from training.config import ExportConfig
from training.errors import ParityError
from training.evaluate.metrics import binary_metrics, metrics_by_group
from training.export.calibration import CALIBRATION_TEXTS
from training.export.onnx_export import export_onnx, load_for_export
from training.export.parity import parity
from training.export.quant_aware import quant_aware_tune
from training.export.quantize import quantize_recipe
from training.finetune.result import FinetuneResult
from training.finetune.scoring import torch_scores
from training.finetune.threshold import tune_threshold
from training.prepare.manifest import PreparedData
from training.prepare.run import read_split
from training.provenance import model_reference
from training.tokenizer_loading import load_tokenizer

PARITY_FILE = "parity.json"


@dataclass(frozen=True)
class ExportResult:
    bundle_dir: Path
    manifest: BundleManifest
    parity: dict[str, Any]
    fp32_model: Path


def parity_rows(data_dir: Path, wanted: int) -> tuple[pd.DataFrame, int]:
    """Validation rows first (they also tune the threshold), topped up from train."""
    validation = read_split(data_dir, "validation")
    rows = validation
    if len(rows) < wanted:
        extra = read_split(data_dir, "train").head(wanted - len(rows))
        rows = pd.concat([rows, extra], ignore_index=True)
    return rows, len(validation)


def quantization_summary(config: ExportConfig) -> str:
    recipe = config.quantization
    parts = [
        f"recipe {config.recipe}: onnxruntime dynamic int8 (QInt8, "
        f"per_channel={recipe.per_channel}, fused={recipe.fuse})"
    ]
    if recipe.int8_embedding_rows:
        parts.append("int8 per-row word embeddings")
    if recipe.weight_only_nodes:
        where = ", ".join(recipe.weight_only_nodes)
        if recipe.weight_only_lower_share < 1:
            where += f" in the lowest {recipe.weight_only_lower_share:.0%} of the layers"
        parts.append(f"8-bit weight-only MatMulNBits for {where}")
    if recipe.exclude_nodes:
        parts.append(f"fp32 for {', '.join(recipe.exclude_nodes)}")
    if recipe.smooth_nodes:
        smoothed = ", ".join(recipe.smooth_nodes)
        parts.append(f"SmoothQuant (alpha {recipe.smooth_alpha}) for {smoothed}")
    if recipe.outlier_channels:
        parts.append(
            f"each FFN's {recipe.outlier_channels} widest intermediate channels fp32 "
            "in a side chain"
        )
    if config.quant_aware.steps:
        parts.append(
            f"weights quantization-aware tuned for {config.quant_aware.steps} steps "
            "toward the fine-tuned model's logits"
        )
    return "; ".join(parts)


def export_bundle(
    model_dir: Path,
    data_dir: Path,
    bundle_dir: Path,
    config: ExportConfig | None = None,
    *,
    work_dir: Path | None = None,
    log: bool = True,
) -> ExportResult:
    config = config or ExportConfig()
    finetuned = FinetuneResult.load(model_dir)
    prepared = PreparedData.load(data_dir)
    if finetuned.data and finetuned.data != prepared.fingerprint():
        # The threshold is tuned on this validation split: it must be the one the model
        # was trained beside, not rows it may have trained on.
        raise ConfigurationError(
            f"{model_dir} was fine-tuned on other prepared data than {data_dir}; "
            "export with the --data the model was trained on"
        )
    max_length, normalization = finetuned.max_length, finetuned.normalization
    work = work_dir or bundle_dir.parent / f"{bundle_dir.name}-build"
    work.mkdir(parents=True, exist_ok=True)

    # The graph quantized is the fine-tuned model's, or its quantization-aware tuned
    # copy; parity is always measured against the fine-tuned model itself.
    quantized_from = model_dir
    if config.quant_aware.steps:
        quantized_from = quant_aware_tune(
            model_dir, data_dir, work / "quant-aware-model", config.quantization, config.quant_aware
        ).model_dir
    fp32 = export_onnx(quantized_from, work / "model-fp32.onnx", config.opset)
    calibration = read_split(data_dir, "train")["text"].astype(str).head(CALIBRATION_TEXTS)
    int8 = quantize_recipe(fp32, work, quantized_from, config.quantization, calibration.tolist())
    tokenizer = bundle_tokenizer(model_dir, max_length)
    tokenizer.save(str(work / "tokenizer.json"))

    rows, n_validation = parity_rows(data_dir, config.parity_texts)
    texts = rows["text"].tolist()
    reference = torch_scores(
        load_for_export(model_dir),
        load_tokenizer(model_dir),
        texts,
        max_length=max_length,
        normalization=normalization,
    )
    scorers = {
        name: ModelRunner(
            path, work / "tokenizer.json", normalization=normalization, max_length=max_length
        )
        for name, path in (("onnx_fp32", fp32), ("onnx_int8", int8))
    }
    scores = {name: s.predict_proba(texts) for name, s in scorers.items()}

    # Quantization shifts probabilities, so the shipped threshold is re-tuned on the
    # quantized model's validation scores with the same target precision.
    labels = rows["label"].to_numpy()[:n_validation]
    target = finetuned.target_precision
    threshold = tune_threshold(labels, scores["onnx_int8"][:n_validation], target)
    checks: dict[str, Any] = {name: parity(reference, s, threshold) for name, s in scores.items()}
    checks["bundle_threshold"] = threshold
    (work / PARITY_FILE).write_text(json.dumps(checks, indent=2) + "\n")
    agreement = checks["onnx_int8"]["label_agreement"]
    if log:
        print(f"parity on {len(texts)} texts: {json.dumps(checks, indent=2)}")
    if config.enforce_parity and agreement < config.min_label_agreement:
        raise ParityError(
            f"quantized model agrees with PyTorch on {agreement:.4f} of {len(texts)} labels, "
            f"below {config.min_label_agreement}; see {work / PARITY_FILE}"
        )

    test = read_split(data_dir, "test")
    test_scores = scorers["onnx_int8"].predict_proba(test["text"].tolist())
    test_metrics = binary_metrics(test["label"].to_numpy(), test_scores, threshold)
    test_metrics["per_language"] = metrics_by_group(
        test["label"].to_numpy(), test_scores, test["language"], threshold
    )
    metadata = prepared.summary
    manifest = BundleManifest(
        model_version="pending",  # write_manifest fills in the content hash
        base_model=model_reference(finetuned.base_model),
        threshold=threshold,
        max_sequence_length=max_length,
        normalization=normalization,
        quantization=quantization_summary(config),
        training_data={
            k: metadata[k]
            for k in ("rows", "splits", "labels", "languages", "inputs", "shortcut_auc")
            if k in metadata
        },
        metrics={
            "test": test_metrics,
            "validation": finetuned.validation,
            "parity": checks["onnx_int8"],
            "target_precision": target,
            "export": asdict(config),
        },
    )
    stored = write_bundle(bundle_dir, int8, tokenizer, manifest)
    return ExportResult(bundle_dir, stored, checks, fp32)
