"""Fine-tuning on ``transformers.Trainer``: weighted loss, early stopping, checkpoints.

The same code runs on a CPU, on one GPU (mixed precision) and on several GPUs under
``accelerate launch`` or ``torchrun``: the Trainer (through ``accelerate``) reads the
launcher's environment, so nothing here branches on the number of processes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from transformers import (
    EarlyStoppingCallback,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from schemas.errors import ConfigurationError
from training.config import FinetuneConfig
from training.evaluate.metrics import binary_metrics
from training.finetune.data import EncodedTexts, WeightedCollator

#: Validation metrics the Trainer logs and early stopping can watch (all but loss: higher
#: is better). Threshold-free ones (ROC-AUC, PR-AUC) do not depend on the 0.5 cut.
LOGGED_METRICS = ("f1", "precision", "recall", "accuracy", "roc_auc", "pr_auc")


def class_weights(labels: list[int]) -> torch.Tensor:
    """Inverse-frequency ("balanced") weights for labels 0 and 1."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=2).astype(float)
    counts[counts == 0] = 1.0
    return torch.tensor(counts.sum() / (2.0 * counts), dtype=torch.float32)


def weighted_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    row_weights: torch.Tensor,
    label_weights: torch.Tensor,
) -> torch.Tensor:
    """Cross-entropy weighted per row (input weight x label weight), normalised by the
    total weight, so a row of weight 2 counts as two rows of weight 1."""
    weight = label_weights.to(logits.device)[labels] * row_weights.to(logits.device)
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    return (losses * weight).sum() / weight.sum().clamp_min(1e-12)


def positive_probability(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(exp[:, 1] / exp.sum(axis=1), dtype=np.float64)


def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """Validation metrics at 0.5 (the shipped threshold is tuned later, in export)."""
    logits = prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    labels = np.asarray(prediction.label_ids, dtype=int)
    metrics = binary_metrics(labels, positive_probability(logits), 0.5)
    # AUCs are undefined on a one-label split: 0.5 (chance) keeps the watched metric defined.
    return {name: float(0.5 if metrics[name] is None else metrics[name]) for name in LOGGED_METRICS}


def is_head(name: str) -> bool:
    """Whether a parameter belongs to the classification head (BERT's pooler and
    classifier, XLM-R's classifier), which starts from random weights."""
    return name.startswith("classifier.") or ".pooler." in name or name.startswith("pooler.")


def parameter_groups(
    model: torch.nn.Module,
    *,
    learning_rate: float,
    weight_decay: float,
    decay_names: set[str],
    head_lr_multiplier: float,
) -> list[dict[str, Any]]:
    """Optimizer groups: encoder and head, each with and without weight decay (biases and
    norms have none, as in the Trainer's own grouping); the head's rate multiplied."""
    groups = []
    for head in (False, True):
        for decay in (True, False):
            params = [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and is_head(n) == head and (n in decay_names) == decay
            ]
            if params:
                rate = learning_rate * (head_lr_multiplier if head else 1.0)
                groups.append(
                    {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": rate}
                )
    return groups


class WeightedTrainer(Trainer):
    """``Trainer`` whose loss weighs each row by its ``weight`` column (per input table)
    and, optionally, by inverse label frequency; the head may learn faster."""

    def __init__(
        self,
        *args: Any,
        label_weights: torch.Tensor,
        head_lr_multiplier: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.label_weights = label_weights
        self.head_lr_multiplier = head_lr_multiplier
        # Our loss normalises by the batch's weight itself; the Trainer must not rescale it.
        self.model_accepts_loss_kwargs = False

    def create_optimizer(self) -> Any:
        if self.optimizer is not None or self.head_lr_multiplier == 1.0:
            return super().create_optimizer()
        target = self.model
        assert target is not None  # the Trainer was built with a model
        groups = parameter_groups(
            target,
            learning_rate=self.args.learning_rate,
            weight_decay=self.args.weight_decay,
            decay_names=set(self.get_decay_parameter_names(target)),
            head_lr_multiplier=self.head_lr_multiplier,
        )
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, target)
        kwargs.pop("lr", None)  # each group carries its own
        self.optimizer = optimizer_cls(groups, lr=self.args.learning_rate, **kwargs)
        return self.optimizer

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ) -> Any:
        features = {k: v for k, v in inputs.items() if k not in ("labels", "weight")}
        outputs = model(**features)
        loss = weighted_loss(outputs.logits, inputs["labels"], inputs["weight"], self.label_weights)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_by_length and isinstance(dataset, EncodedTexts):
            # Lengths are known already: no pass over the dataset to measure them.
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=dataset.lengths,
            )
        return super()._get_train_sampler(train_dataset)


def device_precision(device: str) -> tuple[bool, bool, bool]:
    """(use_cpu, bf16, fp16): mixed precision on CUDA (bf16 where supported), fp32 on CPU."""
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ConfigurationError("--device cuda: no CUDA device is visible")
    if device == "cpu" or not cuda:
        return True, False, False
    bf16 = torch.cuda.is_bf16_supported()
    return False, bf16, not bf16


def torch_device(device: str) -> torch.device:
    """Where to run a hand-written loop for ``--device`` (auto, cpu or cuda), as the
    trainer would (``device_precision``)."""
    use_cpu, _, _ = device_precision(device)
    return torch.device("cpu" if use_cpu else "cuda")


def training_arguments(config: FinetuneConfig, checkpoint_dir: Path) -> TrainingArguments:
    by_steps = config.eval_steps is not None
    strategy = "steps" if by_steps else "epoch"
    loss_metric = config.best_metric == "loss"
    use_cpu, bf16, fp16 = device_precision(config.device)
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        lr_scheduler_type="linear",
        max_grad_norm=config.max_grad_norm,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=config.eval_steps,
        save_steps=config.eval_steps or 500,
        logging_strategy="steps",
        logging_steps=config.eval_steps or 50,
        # The best checkpoint and the latest (to resume from) are kept.
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=config.best_metric,
        greater_is_better=not loss_metric,
        group_by_length=config.group_by_length,
        # The collator's "weight" column is not a model input; the Trainer must keep it.
        remove_unused_columns=False,
        label_names=["labels"],
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=not config.progress,
        report_to="none",
        dataloader_num_workers=0,
        use_cpu=use_cpu,
        bf16=bf16,
        fp16=fp16,
    )


def build_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: EncodedTexts,
    validation: EncodedTexts,
    config: FinetuneConfig,
    checkpoint_dir: Path,
    callbacks: list[TrainerCallback] | None = None,
) -> WeightedTrainer:
    weights = class_weights(train.labels) if config.class_weights else torch.ones(2)
    trainer = WeightedTrainer(
        head_lr_multiplier=config.head_lr_multiplier,
        model=model,
        args=training_arguments(config, checkpoint_dir),
        train_dataset=train,
        eval_dataset=validation,
        data_collator=WeightedCollator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[
            EarlyStoppingCallback(
                early_stopping_patience=config.early_stopping_patience,
                early_stopping_threshold=config.early_stopping_threshold,
            ),
            *(callbacks or []),
        ],
        label_weights=weights,
    )
    if not config.progress:
        # Without a progress bar the Trainer prints every log dict instead: silence it too.
        trainer.remove_callback(PrinterCallback)
    return trainer


def evaluation_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Trainer's evaluation log entries, ``eval_`` prefixes dropped."""
    history = []
    for entry in log_history:
        if "eval_loss" not in entry:
            continue
        row = {k.removeprefix("eval_"): v for k, v in entry.items()}
        row["epoch"] = round(float(row.get("epoch", math.nan)), 3)
        history.append(row)
    return history
