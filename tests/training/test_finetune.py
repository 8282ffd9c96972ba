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


def test_class_weights_balance_the_labels() -> None:
    from training.finetune.loop import class_weights

    weights = class_weights([0, 0, 0, 1])
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)


def test_length_grouped_batches_pad_less(tiny_encoder: Path, sample_csv: Path) -> None:
    import pandas as pd
    from transformers import AutoTokenizer

    from schemas.text_normalization import NormalizationSettings
    from training.finetune.data import EncodedTexts, loader

    rows = pd.read_csv(sample_csv, sep="|")
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    data = EncodedTexts.from_frame(rows, tokenizer, 128, NormalizationSettings())

    def padding(group: bool) -> int:
        batches = loader(data, tokenizer, 16, train=True, group_by_length=group, seed=0)
        return sum(int((b["attention_mask"] == 0).sum()) for b in batches)

    assert padding(True) < padding(False) / 2


def test_seeded_tiny_runs_are_reproducible(tmp_path: Path, tiny_run, tiny_encoder: Path) -> None:  # type: ignore[no-untyped-def]
    from training.finetune.run import finetune
    from training.pipeline import tiny_finetune_config

    data = tiny_run.prepared.directory
    config = dataclasses.replace(tiny_finetune_config(tiny_encoder, 7), max_steps=4, eval_steps=2)
    first = finetune(data, tmp_path / "a", config)
    second = finetune(data, tmp_path / "b", config)
    assert first.threshold == second.threshold
    assert first.validation["roc_auc"] == second.validation["roc_auc"]
    info = json.loads((tmp_path / "a" / "training_info.json").read_text())
    assert info["labels"] == ["no_indicators", "indicators"]
    assert info["steps"] == 4 and len(info["history"]) == 2
    assert (tmp_path / "a" / "tokenizer.json").is_file()


def test_tiny_run_learns_something(tiny_run) -> None:  # type: ignore[no-untyped-def]
    validation = tiny_run.finetuned.validation
    assert validation["roc_auc"] > 0.6  # random is 0.5; the tiny model reaches ~0.8
    assert set(validation["per_language"]) == {"en", "de", "fr", "it", "pt", "es"}
