"""Distillation: a student of fewer teacher layers, trained on soft labels over training
plus unlabelled texts, exported like the teacher and compared with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from schemas.errors import ConfigurationError
from tests.support.cli import train_cli

pytestmark = pytest.mark.training


def test_layer_choice() -> None:
    from training.distill.student import chosen_layers

    assert chosen_layers(12, 6, "spread") == [1, 3, 5, 7, 9, 11]
    assert chosen_layers(12, 4, "first") == [0, 1, 2, 3]
    assert chosen_layers(2, 1, "spread") == [1]
    with pytest.raises(ConfigurationError, match="cannot keep 3"):
        chosen_layers(2, 3, "spread")


def test_student_copies_the_chosen_teacher_layers(tiny_run) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModelForSequenceClassification

    from training.distill.student import build_student

    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_run.finetuned.model_dir)
    student = build_student(teacher, [1])
    assert student.config.num_hidden_layers == 1
    assert len(student.bert.encoder.layer) == 1
    assert teacher.config.num_hidden_layers == 2  # the teacher is untouched
    got, want = student.state_dict(), teacher.state_dict()
    assert torch.equal(
        got["bert.encoder.layer.0.output.dense.weight"],
        want["bert.encoder.layer.1.output.dense.weight"],
    )
    assert torch.equal(got["classifier.weight"], want["classifier.weight"])
    got["classifier.weight"].add_(1.0)  # a copy, not shared storage
    assert not torch.equal(got["classifier.weight"], want["classifier.weight"])


def test_rank_correlation_is_spearmans_rho() -> None:
    from training.distill.report import rank_correlation

    scores = np.array([0.1, 0.5, 0.2, 0.9])
    assert rank_correlation(scores, scores**3) == pytest.approx(1.0)  # same order
    assert rank_correlation(scores, -scores) == pytest.approx(-1.0)
    # Ties share their mean rank: [1, 2.5, 2.5, 4] against [1, 2, 3, 4].
    assert rank_correlation(np.array([1.0, 2.0, 2.0, 3.0]), np.arange(4.0)) == pytest.approx(
        np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1]
    )
    assert rank_correlation(np.ones(3), scores[:3]) is None  # a constant ranks nothing
    assert rank_correlation(scores[:1], scores[:1]) is None


def test_loss_soft_and_hard_terms() -> None:
    from training.distill.run import UNLABELLED, distillation_loss

    teacher = torch.tensor([[2.0, -1.0], [0.5, 0.3], [-3.0, 1.0]])
    labels = torch.tensor([0, UNLABELLED, 1])
    ones, label_weights = torch.ones(3), torch.ones(2)
    same = distillation_loss(teacher, teacher, labels, ones, label_weights, 2.0, 1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    other = distillation_loss(-teacher, teacher, labels, ones, label_weights, 2.0, 1.0)
    assert other.item() > 0.1
    # The hard term sees only the labelled rows: flipping the unlabelled row's logits
    # changes nothing when the loss is all hard.
    student = teacher.clone()
    flipped = student.clone()
    flipped[1] = -flipped[1]
    hard = distillation_loss(student, teacher, labels, ones, label_weights, 2.0, 0.0)
    assert hard.item() == pytest.approx(
        distillation_loss(flipped, teacher, labels, ones, label_weights, 2.0, 0.0).item()
    )


def test_hidden_state_term_counts_real_tokens_of_the_copied_layers() -> None:
    from training.distill.run import hidden_state_loss

    torch.manual_seed(0)
    teacher = [torch.randn(2, 5, 8) for _ in range(5)]  # embeddings + 4 layers
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    # A 2-layer student copied from teacher layers 1 and 3 (hidden states 2 and 4).
    student = [teacher[0], teacher[2].clone(), teacher[4].clone()]
    assert hidden_state_loss(student, teacher, [1, 3], mask).item() == pytest.approx(0, abs=1e-6)
    assert hidden_state_loss(student, teacher, [0, 3], mask).item() > 0.1  # wrong layer
    student[1][0, 3:] = -student[1][0, 3:]  # padding positions: not counted
    assert hidden_state_loss(student, teacher, [1, 3], mask).item() == pytest.approx(0, abs=1e-6)
    student[2] = student[2] * 3.0  # scale-free, as cosine is
    assert hidden_state_loss(student, teacher, [1, 3], mask).item() == pytest.approx(0, abs=1e-6)


def test_training_rows_leave_out_held_out_and_duplicate_texts(tiny_run) -> None:  # type: ignore[no-untyped-def]
    from training.distill.run import UNLABELLED, training_rows
    from training.prepare.run import read_split

    held_out = read_split(tiny_run.prepared.directory, "validation")["text"].iloc[0]
    extra = ["Ein ganz neuer Satz über das Wetter heute.", held_out, "Otra frase nueva aquí."]
    rows = training_rows(tiny_run.prepared, [*extra, extra[0].upper()], None, 0)
    unlabelled = rows[rows["label"] == UNLABELLED]["text"].tolist()
    assert unlabelled == [extra[0], extra[2]]
    assert (rows["label"] != UNLABELLED).sum() == tiny_run.prepared.rows["train"]
    assert len(training_rows(tiny_run.prepared, extra, 1, 0)) == tiny_run.prepared.rows["train"] + 1


def test_later_windows_are_the_services_windows_after_the_first(tiny_run) -> None:  # type: ignore[no-untyped-def]
    from schemas.bundle import ChunkingSettings
    from services.inference.runner import ModelRunner, windows
    from training.finetune.data import encode_texts, later_windows
    from training.prepare.run import read_split
    from training.tokenizer_loading import load_tokenizer

    bundle = tiny_run.exported.bundle_dir
    chunking = ChunkingSettings(enabled=True, stride=8, max_chunks=4)
    runner = ModelRunner.from_bundle(bundle, chunking=chunking)
    texts = read_split(tiny_run.prepared.directory, "test")["text"].astype(str).tolist()
    long_text, short = " ".join(texts[:30]), texts[0]
    (encoding,) = runner.encode([long_text])
    served = windows(encoding.ids, encoding.special_tokens_mask, runner.max_length, chunking)
    assert len(served) == 4  # capped: the text runs far past four windows
    tokenizer = load_tokenizer(tiny_run.finetuned.model_dir)
    args = (tokenizer, runner.max_length, tiny_run.finetuned.normalization)
    # Training's first window is plain truncation; the rest are exactly the served ones.
    assert encode_texts([long_text], *args) == served[:1]
    assert later_windows([short, long_text, short], *args, chunking) == served[1:]
    assert later_windows([short], *args, chunking) == []


def _distill(tiny_run, out: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """`train distill` from the tiny run's model and data into ``out``."""
    return [
        "train",
        "distill",
        "--teacher",
        str(tiny_run.finetuned.model_dir),
        "--data",
        str(tiny_run.prepared.directory),
        "--out",
        str(out),
    ]


def test_train_distill_builds_a_valid_bundle_and_compares(  # type: ignore[no-untyped-def]
    tiny_run, tmp_path: Path, monkeypatch
) -> None:
    from schemas.bundle import MODEL_FILE, ChunkingSettings, read_manifest
    from services.inference.runner import ModelRunner
    from training.calibrate.run import calibrate_bundle
    from training.config import CalibrateConfig
    from training.finetune.result import FinetuneResult
    from training.prepare.run import read_split

    monkeypatch.setenv("DEPDETECT_DATA__WORK_DIR", str(tmp_path / "work"))
    torch.set_num_threads(1)
    unlabelled = tmp_path / "unlabelled.csv"
    texts = [f"texto sin etiqueta número {i} sobre el día" for i in range(40)]
    pd.DataFrame({"text": texts}).to_csv(unlabelled, index=False)
    suite = tmp_path / "suite"
    suite.mkdir()
    read_split(tiny_run.prepared.directory, "test").head(60).to_csv(
        suite / "dev_a.csv", index=False
    )

    app = train_cli()
    # A calibrated teacher with chunked scoring: the student must be scored the same way.
    teacher_bundle = tmp_path / "teacher-bundle"
    shutil.copytree(tiny_run.exported.bundle_dir, teacher_bundle)
    chunking = ChunkingSettings(enabled=True, stride=8, max_chunks=4)
    calibrate_bundle(
        teacher_bundle,
        tiny_run.prepared.directory,
        CalibrateConfig(method="temperature", chunking=chunking, target_precision=0.7),
    )
    student_dir, bundle = tmp_path / "student", tmp_path / "bundle-distilled"
    result = CliRunner().invoke(
        app,
        [
            *_distill(tiny_run, student_dir),
            "--bundle",
            str(bundle),
            "--teacher-bundle",
            str(teacher_bundle),
            "--suite",
            str(suite),
            "--unlabelled",
            str(unlabelled),
            "--layers",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--lr",
            "0.005",
            "--device",
            "cpu",
            "--no-enforce-parity",
            "--windows",
            "--hidden-weight",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    info = FinetuneResult.load(student_dir)
    assert info.config["teacher_layers"] == [1]
    assert info.config["distill"]["hidden_weight"] == 0.5
    assert info.config["rows"]["unlabelled"] == 40
    # Taught on long texts' windows as the teacher bundle cuts them.
    assert info.config["distill"]["windows"]["stride"] == 8
    assert info.validation["roc_auc"] is not None and info.history
    manifest = read_manifest(bundle)
    assert "distilled to 1 of 2 layers" in manifest.base_model
    assert manifest.chunking == chunking
    assert manifest.calibration.method == "temperature"
    assert manifest.calibration.fitted_on["split"] == "validation"
    assert manifest.metrics["calibration"]["target_precision"] == 0.7
    assert manifest.metrics["parity"]["n"] > 0
    runner = ModelRunner.from_bundle(bundle)
    assert runner.predict_proba(["ich bin so müde", "ein schöner tag"]).shape == (2,)
    teacher_graph = tiny_run.exported.bundle_dir / MODEL_FILE
    assert (bundle / MODEL_FILE).stat().st_size < teacher_graph.stat().st_size
    comparison = json.loads((tmp_path / "work" / "comparison" / "distilled.json").read_text())
    assert set(comparison["models"]) == {"teacher", "student"}
    assert {"test (in-distribution)", "dev_a"} <= set(comparison["auc_drop"])
    for drop in comparison["auc_drop"].values():
        low, high = drop["ci"]
        assert low <= high and "95 % interval" in result.output
    assert comparison["speed"]["speedup"] > 0
    assert "ROC-AUC drop" in result.output and "dev_a" in result.output
    # How closely the student follows the teacher, on validation texts only.
    follows = comparison["fidelity"]
    validation = read_split(tiny_run.prepared.directory, "validation")
    assert follows["all"]["n"] == len(validation)
    assert -1 <= follows["all"]["rho"] <= 1
    assert {"all", *validation["language"].astype(str)} <= set(follows)
    assert any(name.startswith("over ") for name in follows)
    assert "Spearman" in result.output


def test_distill_windows_refused_without_a_chunked_teacher_bundle(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--windows against a teacher bundle that truncates: a clear error before any
    training, not a student silently taught without windows."""
    from schemas.bundle import read_manifest

    assert not read_manifest(tiny_run.exported.bundle_dir).chunking.enabled
    app = train_cli()
    student_dir = tmp_path / "student"
    result = CliRunner().invoke(
        app,
        [
            *_distill(tiny_run, student_dir),
            "--teacher-bundle",
            str(tiny_run.exported.bundle_dir),
            "--windows",
        ],
    )
    assert result.exit_code == 1
    assert "--windows needs a teacher bundle" in result.output
    assert not student_dir.exists()
