"""``distill``: from a fine-tuned teacher directory to a fine-tuned student directory.

The student (fewer layers, copied from the teacher) learns the teacher's softened
outputs (KL divergence at temperature T, scaled by T^2) on the training texts plus
unlabelled texts and, where ``soft_weight`` < 1 (by default it is 1), the labels where
there are some (weighted cross-entropy, as the teacher's fine-tuning). With
``DistillConfig.windows``, the later windows of long texts (cut as the bundle will cut
them) are trained on too, with the teacher's soft labels.
Texts of the validation and test splits are never trained on, labelled or not. The
student directory carries a ``training_info.json`` like any fine-tuned model, so
``export_bundle`` exports and quantizes it exactly like the teacher.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F
from transformers import (
    AutoModelForSequenceClassification,
    get_linear_schedule_with_warmup,
    set_seed,
)

from schemas.errors import ConfigurationError
from schemas.text import dedup_key
from training.config import DistillConfig
from training.distill.student import build_student, chosen_layers
from training.evaluate.metrics import binary_metrics, metrics_by_group
from training.finetune.data import (
    encode_texts,
    later_windows,
    length_batches,
    logits_of,
    pad_batch,
)
from training.finetune.result import FinetuneResult
from training.finetune.scoring import torch_scores
from training.finetune.trainer import class_weights, torch_device, weighted_loss
from training.prepare.manifest import PreparedData
from training.prepare.run import read_split
from training.tokenizer_loading import load_tokenizer

UNLABELLED = -1


def unlabelled_texts(sources: Iterable[Path]) -> list[str]:
    """Texts of each source: a sentiment-corpus folder or a table with a ``text`` column
    (its labels, if any, are ignored)."""
    from training.prepare.sentiment import load_sentiment_corpus
    from training.prepare.tables import read_table

    texts: list[str] = []
    for source in sources:
        if source.is_dir():
            frame = load_sentiment_corpus(source)
        elif source.is_file():
            frame = read_table(source)
            if "text" not in frame:
                raise ConfigurationError(f"{source} has no 'text' column")
        else:
            raise ConfigurationError(f"unlabelled texts: {source} not found")
        texts += frame["text"].dropna().astype(str).tolist()
    return texts


def training_rows(
    prepared: PreparedData, unlabelled: Sequence[str], limit: int | None, seed: int
) -> pd.DataFrame:
    """The train split (labelled, weighted) plus unlabelled texts not already in any split."""
    train = read_split(prepared.directory, "train")
    seen = {
        dedup_key(t)
        for split in ("train", "validation", "test")
        for t in read_split(prepared.directory, split)["text"].astype(str)
    }
    fresh: list[str] = []
    for text in unlabelled:
        key = dedup_key(text)
        if text.strip() and key not in seen:
            seen.add(key)
            fresh.append(text)
    if limit is not None and len(fresh) > limit:
        picked = np.random.default_rng(seed).choice(len(fresh), size=limit, replace=False)
        fresh = [fresh[i] for i in sorted(picked)]
    weights = train["weight"] if "weight" in train else np.ones(len(train))
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "text": train["text"].astype(str),
                    "label": train["label"].astype(int),
                    "weight": np.asarray(weights, dtype=float),
                }
            ),
            pd.DataFrame({"text": fresh, "label": UNLABELLED, "weight": 1.0}),
        ],
        ignore_index=True,
    )


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    label_weights: torch.Tensor,
    temperature: float,
    soft_weight: float,
) -> torch.Tensor:
    """soft_weight * T^2 * KL(teacher_T || student_T) + (1 - soft_weight) * weighted CE
    on the labelled rows (unlabelled rows carry label -1 and only the soft term)."""
    soft = F.kl_div(
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        log_target=True,
        reduction="none",
    ).sum(dim=-1)
    loss = soft_weight * temperature**2 * soft.mean()
    labelled = labels != UNLABELLED
    if soft_weight < 1 and bool(labelled.any()):
        hard = weighted_loss(student[labelled], labels[labelled], weights[labelled], label_weights)
        loss = loss + (1 - soft_weight) * hard
    return loss


def hidden_state_loss(
    student: Sequence[torch.Tensor],
    teacher: Sequence[torch.Tensor],
    layers: Sequence[int],
    mask: torch.Tensor,
) -> torch.Tensor:
    """Mean over the student's layers of 1 - cosine(student layer k, teacher layer
    ``layers[k]``) over the real tokens; ``student`` and ``teacher`` are the models'
    ``hidden_states`` (index 0: the embeddings, index i: layer i - 1's output)."""
    real = mask.bool()
    terms = [
        1 - F.cosine_similarity(student[k + 1][real], teacher[layer + 1][real], dim=-1).mean()
        for k, layer in enumerate(layers)
    ]
    return torch.stack(terms).mean()


def distill(
    teacher_dir: Path,
    data_dir: Path,
    out_dir: Path,
    config: DistillConfig | None = None,
    *,
    unlabelled: Sequence[str] = (),
) -> FinetuneResult:
    config = config or DistillConfig()
    teacher_info = FinetuneResult.load(teacher_dir)
    prepared = PreparedData.load(data_dir)
    if teacher_info.data and teacher_info.data != prepared.fingerprint():
        raise ConfigurationError(
            f"{teacher_dir} was fine-tuned on other prepared data than {data_dir}; "
            "distill with the --data the teacher was trained on"
        )
    set_seed(config.seed)
    device = torch_device(config.device)
    max_length = config.max_length or teacher_info.max_length
    normalization = teacher_info.normalization
    tokenizer = load_tokenizer(teacher_dir)
    pad_id = int(tokenizer.pad_token_id or 0)
    teacher = AutoModelForSequenceClassification.from_pretrained(
        teacher_dir, attn_implementation="eager"
    )
    teacher.to(device)  # type: ignore[arg-type]
    total = int(teacher.config.num_hidden_layers)
    layers = chosen_layers(total, config.layers, config.layer_choice)
    student = build_student(teacher, layers)
    student.to(device)  # type: ignore[arg-type]  # transformers' stub types .to oddly
    if config.freeze_word_embeddings:
        student.get_input_embeddings().requires_grad_(False)

    rows = training_rows(prepared, unlabelled, config.max_unlabelled, config.seed)
    input_ids = encode_texts(rows["text"].tolist(), tokenizer, max_length, normalization)
    extra: list[list[int]] = []
    if config.windows is not None and config.windows.enabled:
        extra = later_windows(
            rows["text"].tolist(), tokenizer, max_length, normalization, config.windows
        )
        if config.progress:
            print(f"distill: {len(extra)} later windows of long texts added", flush=True)
    input_ids += extra
    teacher_logits = logits_of(teacher, input_ids, pad_id, config.batch_size * 2)
    if config.hidden_weight:
        teacher.eval()
        teacher.requires_grad_(False)
    else:
        del teacher  # its soft labels are all it gives
    labels = torch.tensor(
        np.concatenate([rows["label"].to_numpy(), np.full(len(extra), UNLABELLED)]),
        dtype=torch.long,
    )
    weights = torch.tensor(
        np.concatenate([rows["weight"].to_numpy(), np.ones(len(extra))]), dtype=torch.float32
    )
    label_weights = class_weights([int(x) for x in rows["label"] if x != UNLABELLED])

    validation = read_split(prepared.directory, "validation")
    val_labels = validation["label"].to_numpy(dtype=int)

    def validate() -> dict[str, Any]:
        scores = torch_scores(
            student,
            tokenizer,
            validation["text"].tolist(),
            max_length=max_length,
            normalization=normalization,
        )
        metrics: dict[str, Any] = binary_metrics(val_labels, scores, 0.5)
        metrics["per_language"] = metrics_by_group(val_labels, scores, validation["language"], 0.5)
        return metrics

    rng = np.random.default_rng(config.seed)
    lengths = [len(ids) for ids in input_ids]
    per_epoch = math.ceil(len(lengths) / config.batch_size)
    steps = config.max_steps or math.ceil(per_epoch * config.epochs)
    trainable = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = get_linear_schedule_with_warmup(optimizer, int(steps * config.warmup_ratio), steps)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor] | None, dict[str, Any]] = (
        -1.0,
        0,
        None,
        {},
    )
    step, started = 0, time.perf_counter()
    while step < steps:
        student.train()
        for batch_rows in length_batches(lengths, config.batch_size, rng):
            batch = pad_batch([input_ids[i] for i in batch_rows], pad_id)
            index = torch.as_tensor(batch_rows)
            feeds = {k: v.to(device) for k, v in batch.items()}
            output = student(**feeds, output_hidden_states=bool(config.hidden_weight))
            logits = output.logits
            loss = distillation_loss(
                logits.float(),
                teacher_logits[index].to(device),
                labels[index].to(device),
                weights[index].to(device),
                label_weights,
                config.temperature,
                config.soft_weight,
            )
            if config.hidden_weight:
                with torch.no_grad():
                    reference = teacher(**feeds, output_hidden_states=True).hidden_states
                loss = loss + config.hidden_weight * hidden_state_loss(
                    output.hidden_states, reference, layers, feeds["attention_mask"]
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if config.progress and step % 50 == 0:
                print(f"distill step {step}/{steps} loss {loss.item():.4f}", flush=True)
            if step % per_epoch == 0 or step == steps:
                metrics = validate()
                entry = {"step": step, "loss": float(loss.item()), **_headline(metrics)}
                history.append(entry)
                if config.progress:
                    print(f"validation at step {step}: {entry}", flush=True)
                auc = metrics["roc_auc"] if metrics["roc_auc"] is not None else 0.5
                if auc > best[0]:
                    best = (auc, step, copy.deepcopy(student.state_dict()), metrics)
                student.train()
            if step >= steps:
                break

    _, best_step, best_state, best_metrics = best
    if best_state is not None:
        student.load_state_dict(best_state)
    student.to("cpu")  # type: ignore[arg-type]
    student.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    result = FinetuneResult(
        base_model=f"{teacher_info.base_model} distilled to {len(layers)} of {total} layers",
        max_length=max_length,
        normalization=normalization,
        target_precision=teacher_info.target_precision,
        validation=best_metrics,
        best_step=best_step,
        history=history,
        steps=step,
        train_seconds=round(time.perf_counter() - started, 2),
        config={
            "distill": {
                **asdict(config),
                "windows": config.windows.model_dump() if config.windows else None,
            },
            "teacher_layers": layers,
            "teacher_validation": _headline(teacher_info.validation),
            "rows": {
                "labelled": int((rows["label"] != UNLABELLED).sum()),
                "unlabelled": int((rows["label"] == UNLABELLED).sum()),
                "later_windows": len(extra),
            },
        },
        data=prepared.fingerprint(),
    )
    return result.save(out_dir)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in ("roc_auc", "pr_auc", "f1", "precision", "recall")}
