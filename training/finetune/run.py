"""``finetune``: the short orchestrator from prepared splits to a saved model directory."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import AutoModelForSequenceClassification, TrainerCallback, set_seed

from schemas.errors import ConfigurationError
from training.config import FinetuneConfig
from training.evaluate.metrics import binary_metrics, metrics_by_group
from training.finetune.data import EncodedTexts
from training.finetune.result import LABELS, FinetuneResult
from training.finetune.scoring import torch_scores
from training.finetune.trainer import build_trainer, evaluation_history
from training.prepare.manifest import PreparedData
from training.prepare.run import read_split
from training.provenance import model_reference
from training.tokenizer_loading import load_tokenizer


def checkpoint_dir_for(out_dir: Path) -> Path:
    """Checkpoints sit next to the model directory, so the model directory stays small."""
    return out_dir.parent / f"{out_dir.name}-checkpoints"


def finetune(
    data_dir: Path,
    out_dir: Path,
    config: FinetuneConfig | None = None,
    *,
    base_model_name: str | None = None,
    resume: bool = False,
    checkpoint_dir: Path | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> FinetuneResult:
    """Fine-tune ``config.base_model`` on the prepared splits in ``data_dir``.

    Texts are normalised as prepare's manifest records (what its audit saw), so the
    stage command alone and ``train all`` train alike. ``base_model_name`` overrides the
    recorded base model name; ``resume`` continues from the latest checkpoint in
    ``checkpoint_dir`` (default: ``<out_dir>-checkpoints``), else that folder is cleared.
    """
    config = config or FinetuneConfig()
    prepared = PreparedData.load(data_dir)
    normalization = prepared.normalization
    checkpoints = checkpoint_dir or checkpoint_dir_for(out_dir)
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

    train_rows = read_split(prepared.directory, "train")
    val_rows = read_split(prepared.directory, "validation")
    train = EncodedTexts.from_frame(train_rows, tokenizer, config.max_length, normalization)
    validation = EncodedTexts.from_frame(val_rows, tokenizer, config.max_length, normalization)
    trainer = build_trainer(
        model, tokenizer, train, validation, config, checkpoints, callbacks=callbacks
    )
    if not resume:
        with trainer.args.main_process_first(local=False):
            if trainer.is_world_process_zero():
                shutil.rmtree(checkpoints, ignore_errors=True)
    try:
        output = trainer.train(resume_from_checkpoint=True if resume else None)
    except ValueError as exc:
        if resume and "checkpoint" in str(exc):
            raise ConfigurationError(f"--resume: no checkpoint in {checkpoints}") from exc
        raise

    # The best checkpoint's weights are loaded (load_best_model_at_end); score it once
    # with the shared PyTorch scorer for the per-language table.
    best = trainer.accelerator.unwrap_model(trainer.model)
    scores = torch_scores(
        best,
        tokenizer,
        val_rows["text"].tolist(),
        max_length=config.max_length,
        normalization=normalization,
        batch_size=config.eval_batch_size,
    )
    labels = val_rows["label"].to_numpy()
    metrics: dict[str, Any] = binary_metrics(labels, scores, 0.5)
    metrics["per_language"] = metrics_by_group(labels, scores, val_rows["language"], 0.5)
    state = trainer.state
    result = FinetuneResult(
        base_model=base_model_name or model_reference(config.base_model),
        max_length=config.max_length,
        normalization=normalization,
        target_precision=config.target_precision,
        validation=metrics,
        best_step=state.best_global_step,
        history=evaluation_history(state.log_history),
        steps=state.global_step,
        train_seconds=round(float(output.metrics.get("train_runtime", 0.0)), 2),
        config={k: v for k, v in asdict(config).items() if k != "base_model"},
        data=prepared.fingerprint(),
    )
    if trainer.is_world_process_zero():
        trainer.save_model(str(out_dir))  # weights, config and tokenizer
        result.save(out_dir)
    else:
        result._directory = out_dir
    trainer.accelerator.wait_for_everyone()
    return result
