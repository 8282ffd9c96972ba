"""The training loop: weighted loss, warm-up schedule, evaluation, early stopping.

A plain loop rather than ``transformers.Trainer``: it needs no ``accelerate``, and
sample weights (per input table) and class weights fit in three lines of loss.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from training.config import FinetuneConfig
from training.evaluate.metrics import binary_metrics
from training.finetune.data import EncodedTexts, loader, pad_batch


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


@torch.no_grad()
def predict_proba(
    model: PreTrainedModel,
    dataset: EncodedTexts,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """P(label 1) per row, in dataset order; batches are length-sorted to pad little."""
    model.eval()
    order = np.argsort(dataset.lengths, kind="stable")
    scores = np.empty(len(dataset), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = pad_batch([dataset.input_ids[i] for i in chunk], int(tokenizer.pad_token_id or 0))
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).logits
        scores[chunk] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
    return scores


def class_weights(labels: list[int]) -> torch.Tensor:
    """Inverse-frequency ("balanced") weights for labels 0 and 1."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=2).astype(float)
    counts[counts == 0] = 1.0
    return torch.tensor(counts.sum() / (2.0 * counts), dtype=torch.float32)


def _score(metrics: dict[str, Any], name: str, loss: float) -> float:
    # Every metric is "higher is better"; loss is negated to fit.
    if name == "loss":
        return -loss
    value = metrics.get(name)
    return float(value) if value is not None else float("-inf")


def _say(config: FinetuneConfig, message: str) -> None:
    if config.progress:
        tqdm.write(message)


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0


def train_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: EncodedTexts,
    validation: EncodedTexts,
    config: FinetuneConfig,
) -> TrainResult:
    """Train in place; on return the model holds the best checkpoint's weights."""
    device = resolve_device(config.device)
    model.to(device)  # type: ignore[arg-type]  # transformers' stub types `to` narrowly
    batches = loader(
        train,
        tokenizer,
        config.batch_size,
        train=True,
        group_by_length=config.group_by_length,
        seed=config.seed,
    )
    per_epoch = len(batches)
    total = config.max_steps or max(1, math.ceil(per_epoch * config.epochs))
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)  # no decay on bias/norm
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
    )
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    weights = (class_weights(train.labels) if config.class_weights else torch.ones(2)).to(device)
    eval_every = config.eval_steps or per_epoch

    result = TrainResult()
    best_score, best_state, patience = float("-inf"), None, 0
    started = time.perf_counter()
    # Off a terminal (logs, CI) a redraw per step floods the output: redraw rarely there.
    bar = tqdm(
        total=total,
        disable=not config.progress,
        desc="fine-tune",
        unit="step",
        mininterval=0.1 if sys.stderr.isatty() else 30.0,
    )
    step = 0
    while step < total:
        for batch in batches:
            model.train()
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
            row_weight = weights[batch["labels"]] * batch["weight"]
            losses = F.cross_entropy(logits.float(), batch["labels"], reduction="none")
            loss = (losses * row_weight).sum() / row_weight.sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step % eval_every == 0 or step == total:
                scores = predict_proba(model, validation, tokenizer, config.eval_batch_size, device)
                metrics = binary_metrics(validation.labels, scores, 0.5)
                val_loss = float(
                    F.binary_cross_entropy(
                        torch.tensor(scores).clamp(1e-7, 1 - 1e-7),
                        torch.tensor(validation.labels, dtype=torch.float64),
                    )
                )
                metrics.update(
                    step=step,
                    epoch=round(step / per_epoch, 3),
                    train_loss=loss.item(),
                    val_loss=val_loss,
                )
                result.history.append(metrics)
                _say(
                    config,
                    f"step {step}: val f1 {metrics['f1']:.4f} "
                    f"roc_auc {metrics['roc_auc']} val_loss {val_loss:.4f}",
                )
                current = _score(metrics, config.best_metric, val_loss)
                if best_state is None or current > best_score + config.early_stopping_threshold:
                    best_score, patience = current, 0
                    best_state = copy.deepcopy(
                        {k: v.detach().cpu() for k, v in model.state_dict().items()}
                    )
                    result.best = metrics
                else:
                    patience += 1
                if patience >= config.early_stopping_patience:
                    _say(config, f"early stopping at step {step}")
                    total = step
            if step >= total:
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    result.steps = step
    result.seconds = time.perf_counter() - started
    return result
