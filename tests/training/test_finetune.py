"""Fine-tuning: config validation, threshold choice, weighting, seeded tiny runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from schemas.errors import ConfigurationError
from training.config import FinetuneConfig
from training.finetune.threshold import tune_threshold

pytestmark = pytest.mark.training


def test_defaults_follow_the_original_and_are_validated() -> None:
    config = FinetuneConfig()
    assert (config.learning_rate, config.warmup_ratio, config.weight_decay) == (2e-5, 0.1, 0.01)
    assert (config.epochs, config.batch_size) == (10, 64)
    assert (config.early_stopping_patience, config.early_stopping_threshold) == (5, 0.001)
    assert config.target_precision == 0.95
    for bad in (
        {"learning_rate": 0},
        {"best_metric": "vibes"},
        {"max_length": 4096},
        {"target_precision": 1.5},
        {"device": "tpu"},
    ):
        with pytest.raises(ConfigurationError):
            FinetuneConfig(**bad)  # type: ignore[arg-type]


def test_threshold_reaches_target_precision_with_highest_recall() -> None:
    labels = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    assert tune_threshold(labels, scores, 0.95) == pytest.approx(0.7)  # 4/4 precision
    assert tune_threshold(labels, scores, 0.8) == pytest.approx(0.5)  # 5/6, recall 1
    assert tune_threshold(np.zeros(4), scores[:4], 0.95) == 0.5  # one class: neutral


def test_threshold_ignores_a_lucky_precision_spike_below_a_dip() -> None:
    # Precision is 5/6 at 0.3 and 4/5 at 0.4, dips to 3/4 at 0.5, is 1.0 from 0.6 up:
    # the first touch of 0.8 (at 0.3) is luck, the dip shows it.
    labels = np.array([0, 1, 1, 0, 1, 1, 1])
    scores = np.array([0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    assert tune_threshold(labels, scores, 0.8) == pytest.approx(0.6)


def test_one_negative_at_the_top_does_not_collapse_the_threshold() -> None:
    # A good, overlapping ranking with one negative scored highest: precision at the very
    # top is 0, which vetoed every threshold, and the fallback (best precision) kept
    # recall at 0.67 where precision 0.8 allows 0.97.
    rng = np.random.default_rng(0)
    positives = np.clip(rng.normal(0.7, 0.1, 200), 0, 1)
    negatives = np.append(np.clip(rng.normal(0.35, 0.1, 799), 0, 1), 0.99)
    labels = np.r_[np.ones(200), np.zeros(800)].astype(int)
    scores = np.r_[positives, negatives]
    threshold = tune_threshold(labels, scores, 0.8)
    flagged = scores >= threshold
    assert labels[flagged].mean() >= 0.8
    assert labels[flagged].sum() / 200 > 0.9  # recall, not the careful fallback's


def test_class_weights_balance_the_labels() -> None:
    from training.finetune.trainer import class_weights

    weights = class_weights([0, 0, 0, 1])
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)


def test_row_weights_count_in_the_loss() -> None:
    import torch
    from torch.nn import functional as F

    from training.finetune.trainer import weighted_loss

    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]])
    labels = torch.tensor([1, 0, 1])
    per_row = F.cross_entropy(logits, labels, reduction="none")
    even = torch.ones(2)
    # Weight 0 drops a row; weight 2 counts a row twice.
    dropped = weighted_loss(logits, labels, torch.tensor([1.0, 0.0, 1.0]), even)
    assert dropped == pytest.approx(float((per_row[0] + per_row[2]) / 2))
    doubled = weighted_loss(logits, labels, torch.tensor([2.0, 1.0, 1.0]), even)
    assert doubled == pytest.approx(float((2 * per_row[0] + per_row[1] + per_row[2]) / 4))
    # Label weights multiply the row weights.
    by_label = weighted_loss(logits, labels, torch.ones(3), torch.tensor([3.0, 1.0]))
    assert by_label == pytest.approx(float((per_row[0] + 3 * per_row[1] + per_row[2]) / 5))


def test_trainer_loss_uses_the_weight_column(tiny_encoder: Path, sample_csv: Path) -> None:
    """The Trainer subclass feeds the collator's weight column into the loss."""
    import pandas as pd
    import torch
    from transformers import AutoModelForSequenceClassification

    from schemas.text import NormalizationSettings
    from training.finetune.data import EncodedTexts, WeightedCollator
    from training.finetune.trainer import build_trainer
    from training.tokenizer_loading import load_tokenizer

    rows = pd.read_csv(sample_csv, sep="|").head(8)
    tokenizer = load_tokenizer(tiny_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=2)
    data = EncodedTexts.from_frame(rows, tokenizer, 64, NormalizationSettings())
    config = FinetuneConfig(
        base_model=str(tiny_encoder), class_weights=False, device="cpu", progress=False
    )
    trainer = build_trainer(model, tokenizer, data, data, config, Path("unused"))
    batch = WeightedCollator(tokenizer)([data[i] for i in range(len(data))])
    model.eval()
    with torch.no_grad():
        even = float(trainer.compute_loss(model, batch))
        first_only = dict(batch, weight=torch.tensor([1.0] + [0.0] * (len(data) - 1)))
        single = float(trainer.compute_loss(model, first_only))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        expected = torch.nn.functional.cross_entropy(logits.logits[:1], batch["labels"][:1])
    assert single == pytest.approx(float(expected), rel=1e-5)
    assert single != pytest.approx(even, rel=1e-3)


def test_length_grouped_batches_pad_less(tiny_encoder: Path, sample_csv: Path) -> None:
    import pandas as pd
    from transformers import AutoModelForSequenceClassification

    from schemas.text import NormalizationSettings
    from training.finetune.data import EncodedTexts
    from training.finetune.trainer import build_trainer
    from training.tokenizer_loading import load_tokenizer

    rows = pd.read_csv(sample_csv, sep="|")
    tokenizer = load_tokenizer(tiny_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=2)
    data = EncodedTexts.from_frame(rows, tokenizer, 128, NormalizationSettings())

    def padding(group: bool) -> int:
        config = FinetuneConfig(
            base_model=str(tiny_encoder),
            batch_size=16,
            group_by_length=group,
            device="cpu",
            progress=False,
        )
        trainer = build_trainer(model, tokenizer, data, data, config, Path("unused"))
        batches = trainer.get_train_dataloader()
        return sum(int((b["attention_mask"] == 0).sum()) for b in batches)

    assert padding(True) < padding(False) / 2


def test_seeded_tiny_runs_are_reproducible(tmp_path: Path, tiny_run, tiny_encoder: Path) -> None:  # type: ignore[no-untyped-def]
    from training.finetune.run import finetune
    from training.pipeline import tiny_finetune_config

    data = tiny_run.prepared.directory
    config = dataclasses.replace(tiny_finetune_config(tiny_encoder, 7), max_steps=4, eval_steps=2)
    first = finetune(data, tmp_path / "a", config)
    second = finetune(data, tmp_path / "b", config)
    assert first.validation["roc_auc"] == second.validation["roc_auc"]
    info = json.loads((tmp_path / "a" / "training_info.json").read_text())
    assert info["labels"] == ["no_indicators", "indicators"]
    assert info["steps"] == 4 and [h["step"] for h in info["history"]] == [2, 4]
    assert (tmp_path / "a" / "tokenizer.json").is_file()
    # Checkpoints live beside the model directory, which holds only the model.
    assert sorted(p.name for p in (tmp_path / "a-checkpoints").iterdir())[-1] == "checkpoint-4"


def test_an_interrupted_run_resumes_to_the_same_weights(
    tmp_path: Path,
    tiny_run,  # type: ignore[no-untyped-def]
    tiny_encoder: Path,
) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from training.finetune.run import finetune
    from training.pipeline import tiny_finetune_config

    class StopAt(TrainerCallback):
        """Simulates a killed run: training stops after the step-4 checkpoint."""

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step == 4:
                control.should_training_stop = True
            return control

    data = tiny_run.prepared.directory
    config = dataclasses.replace(
        tiny_finetune_config(tiny_encoder, 3),
        max_steps=8,
        eval_steps=2,
        early_stopping_patience=100,
        best_metric="loss",
    )
    straight = finetune(data, tmp_path / "straight", config)
    interrupted = finetune(data, tmp_path / "resumed", config, callbacks=[StopAt()])
    assert interrupted.steps == 4
    assert (tmp_path / "resumed-checkpoints" / "checkpoint-4").is_dir()
    resumed = finetune(data, tmp_path / "resumed", config, resume=True)
    assert resumed.steps == straight.steps == 8
    assert [h["step"] for h in resumed.history] == [2, 4, 6, 8]
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    for name, tensor in a.items():
        torch.testing.assert_close(tensor, b[name], msg=name)


def test_resume_without_a_checkpoint_is_refused(
    tmp_path: Path,
    tiny_run,  # type: ignore[no-untyped-def]
    tiny_encoder: Path,
) -> None:
    from training.finetune.run import finetune
    from training.pipeline import tiny_finetune_config

    config = dataclasses.replace(tiny_finetune_config(tiny_encoder, 0), max_steps=2)
    with pytest.raises(ConfigurationError, match="no checkpoint"):
        finetune(tiny_run.prepared.directory, tmp_path / "m", config, resume=True)


def test_stage_commands_use_prepares_normalization(
    tmp_path: Path,
    tiny_run,  # type: ignore[no-untyped-def]
    tiny_encoder: Path,
) -> None:
    """`train finetune` alone reads the normalisation prepare recorded."""
    import shutil

    from training.finetune.run import finetune
    from training.pipeline import tiny_finetune_config

    data = tmp_path / "data"
    shutil.copytree(tiny_run.prepared.directory, data)
    metadata = json.loads((data / "metadata.json").read_text())
    metadata["normalization"]["drop_emoji"] = False
    (data / "metadata.json").write_text(json.dumps(metadata))
    config = dataclasses.replace(tiny_finetune_config(tiny_encoder, 0), max_steps=1)
    result = finetune(data, tmp_path / "m", config)
    assert result.normalization.drop_emoji is False


def test_tiny_run_learns_something(tiny_run) -> None:  # type: ignore[no-untyped-def]
    validation = tiny_run.finetuned.validation
    assert validation["roc_auc"] > 0.6  # random is 0.5; the tiny model reaches ~0.8
    assert set(validation["per_language"]) == {"en", "de", "fr", "it", "pt", "es"}


def test_device_choice_and_mixed_precision() -> None:
    import torch

    from training.finetune.trainer import device_precision

    assert device_precision("cpu") == (True, False, False)
    if torch.cuda.is_available():
        use_cpu, bf16, fp16 = device_precision("cuda")
        assert not use_cpu and bf16 != fp16  # one mixed precision on a GPU
    else:
        with pytest.raises(ConfigurationError, match="no CUDA"):
            device_precision("cuda")
        assert device_precision("auto") == (True, False, False)


def test_the_same_command_runs_in_two_processes(
    tmp_path: Path,
    tiny_run,  # type: ignore[no-untyped-def]
    tiny_encoder: Path,
) -> None:
    """`torchrun` starts two CPU processes (gloo): the unchanged command trains one model
    on both data shards, evaluates, and only rank 0 writes the model and its hand-off."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"),
        *("-m", "depdetect.cli.main", "train", "finetune"),
        *("--data", str(tiny_run.prepared.directory), "--out", str(out)),
        *("--base-model", str(tiny_encoder), "--device", "cpu", "--max-steps", "4"),
        *("--eval-steps", "2", "--batch-size", "8", "--lr", "0.005", "--max-length", "64"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("model saved to") == 2  # both ranks finish the command
    info = json.loads((out / "training_info.json").read_text())
    assert info["steps"] == 4 and [h["step"] for h in info["history"]] == [2, 4]
    # Two processes of batch 8 see 16 rows per step: 4 steps cover 64 training rows.
    rows = info["data"]["splits"]["train"]["rows"]
    assert info["history"][-1]["epoch"] == pytest.approx(64 / rows, abs=0.02)


def test_the_head_learns_faster_when_asked(tmp_path: Path) -> None:
    """--head-lr k: the classifier and pooler get k x the encoder's rate; decay groups as
    the Trainer makes them (no decay on biases and norms)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    from training.finetune.trainer import WeightedTrainer, is_head

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=2,
        )
    )
    args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.01, use_cpu=True
    )
    trainer = WeightedTrainer(
        model=model, args=args, label_weights=torch.ones(2), head_lr_multiplier=20.0
    )
    optimizer = trainer.create_optimizer()
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert set(rate) == {id(p) for p in names.values() if p.requires_grad}
    assert rate[id(names["classifier.weight"])] == pytest.approx(2e-2)
    assert rate[id(names["bert.pooler.dense.weight"])] == pytest.approx(2e-2)
    assert rate[id(names["bert.encoder.layer.0.output.dense.weight"])] == pytest.approx(1e-3)
    assert decay[id(names["classifier.weight"])] == 0.01
    assert decay[id(names["classifier.bias"])] == 0.0
    assert not is_head("bert.encoder.layer.0.attention.self.query.weight")
    # 1x keeps the Trainer's own optimizer: one rate for all.
    plain = WeightedTrainer(
        model=model, args=args, label_weights=torch.ones(2), head_lr_multiplier=1.0
    ).create_optimizer()
    assert {g["lr"] for g in plain.param_groups} == {1e-3}
