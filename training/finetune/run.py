"""``finetune``: the short orchestrator from prepared splits to a saved model directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification, set_seed

from schemas.messages import Label
from schemas.text_normalization import NormalizationSettings
from training.config import FinetuneConfig
from training.evaluate.metrics import binary_metrics, metrics_by_group
from training.finetune.data import EncodedTexts
from training.finetune.loop import predict_proba, resolve_device, train_model
from training.finetune.threshold import tune_threshold
from training.prepare.run import read_split
from training.tokenizer_loading import load_tokenizer

TRAINING_INFO = "training_info.json"
LABELS = [Label.NO_INDICATORS.value, Label.INDICATORS.value]


@dataclass(frozen=True)
class FinetuneResult:
    model_dir: Path
    threshold: float
    validation: dict[str, Any]


def finetune(
    data_dir: Path,
    out_dir: Path,
    config: FinetuneConfig | None = None,
    *,
    normalization: NormalizationSettings | None = None,
    base_model_name: str | None = None,
) -> FinetuneResult:
    """Fine-tune ``config.base_model``; ``base_model_name`` overrides its recorded name."""
    config = config or FinetuneConfig()
    normalization = normalization or NormalizationSettings()
    set_seed(config.seed)
    tokenizer = load_tokenizer(config.base_model)
    model = AutoModelForSequenceClassification.from_pretrained(
        config.base_model,
        num_labels=2,
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    if config.freeze_word_embeddings:
        model.get_input_embeddings().requires_grad_(False)

    train_rows, val_rows = read_split(data_dir, "train"), read_split(data_dir, "validation")
    train = EncodedTexts.from_frame(train_rows, tokenizer, config.max_length, normalization)
    validation = EncodedTexts.from_frame(val_rows, tokenizer, config.max_length, normalization)
    result = train_model(model, tokenizer, train, validation, config)

    scores = predict_proba(
        model, validation, tokenizer, config.eval_batch_size, resolve_device(config.device)
    )
    threshold = tune_threshold(val_rows["label"].to_numpy(), scores, config.target_precision)
    labels = val_rows["label"].to_numpy()
    metrics = binary_metrics(labels, scores, threshold)
    metrics["per_language"] = metrics_by_group(labels, scores, val_rows["language"], threshold)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    info = {
        "base_model": base_model_name or config.base_model,
        "labels": LABELS,
        "threshold": threshold,
        "target_precision": config.target_precision,
        "max_length": config.max_length,
        "normalization": normalization.model_dump(),
        "validation": metrics,
        "best_checkpoint": result.best,
        "history": result.history,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 2),
        "config": asdict(config),
        "data_dir": str(data_dir),
    }
    (out_dir / TRAINING_INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")
    return FinetuneResult(out_dir, threshold, metrics)


def read_training_info(model_dir: Path) -> dict[str, Any]:
    path = model_dir / TRAINING_INFO
    return json.loads(path.read_text()) if path.is_file() else {}
