"""Chunked scoring, calibration, the dev-suite table, the TF-IDF reference and LOSO,
on the tiny bundle and tiny tables."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from schemas.bundle import (
    MANIFEST,
    Calibration,
    ChunkingSettings,
    content_hash,
    read_manifest,
)
from services.inference.runner import ModelRunner, calibrated, windows
from training.prepare.run import read_split

pytestmark = pytest.mark.training


def test_windows_cover_the_text_with_overlap_and_keep_special_tokens() -> None:
    ids = [101, *range(1, 21), 102]  # [CLS] 20 tokens [SEP]
    special = [1, *([0] * 20), 1]
    chunking = ChunkingSettings(enabled=True, stride=2, max_chunks=10)
    out = windows(ids, special, 8, chunking)
    # Room for 6 body tokens per window, 4 new ones each time.
    assert out[0] == [101, 1, 2, 3, 4, 5, 6, 102]  # the first window is plain truncation
    assert out[1] == [101, 5, 6, 7, 8, 9, 10, 102]
    assert all(w[0] == 101 and w[-1] == 102 and len(w) <= 8 for w in out)
    body = {t for w in out for t in w[1:-1]}
    assert body == set(range(1, 21))
    assert windows(ids, special, 64, chunking) == [ids]  # short: one window, unchanged
    capped = windows(ids, special, 8, chunking.model_copy(update={"max_chunks": 2}))
    assert len(capped) == 2


def _variant(bundle: Path, model: Path, **update: Any) -> ModelRunner:
    manifest = read_manifest(bundle)
    return ModelRunner(
        model,
        bundle / "tokenizer.json",
        normalization=manifest.normalization,
        max_length=manifest.max_sequence_length,
        **update,
    )


def test_chunked_scoring_reads_the_whole_text(tiny_run) -> None:  # type: ignore[no-untyped-def]
    bundle = tiny_run.exported.bundle_dir
    # The fp32 graph: pooling is what is tested, and int8 scores move with their run-mates
    # (one dynamic activation scale per run), by far more on some builds of the tiny model.
    model = tiny_run.exported.fp32_model
    texts = read_split(tiny_run.prepared.directory, "test")["text"].astype(str).tolist()
    long_text = " ".join(texts[:40])  # far past 128 tokens
    short = texts[:5]
    plain = _variant(bundle, model)
    chunked = _variant(bundle, model, chunking=ChunkingSettings(enabled=True, stride=16))
    # Short texts: one window, the very same score as truncation.
    np.testing.assert_array_equal(plain.predict_proba(short), chunked.predict_proba(short))
    assert len(chunked._windows(chunked.encode([long_text]))[0]) > 1
    # Max pooling includes the first window (the truncated text), so it never scores lower.
    assert chunked.predict_proba([long_text])[0] >= plain.predict_proba([long_text])[0]
    # The deciding window is scored as a text of its own would be.
    per_window = [
        chunked._logits([w], 1)[0] for w in chunked._windows(chunked.encode([long_text]))[0]
    ]
    margins = [float(w[1] - w[0]) for w in per_window]
    assert chunked.margins([long_text])[0] == pytest.approx(max(margins), abs=1e-4)
    top2 = _variant(
        bundle,
        model,
        chunking=ChunkingSettings(enabled=True, stride=16, pooling="mean_top_k", top_k=2),
    )
    assert top2.margins([long_text])[0] == pytest.approx(
        float(np.mean(sorted(margins)[-2:])), abs=1e-4
    )


def test_fit_calibration_recovers_a_known_temperature() -> None:
    from training.calibrate.run import fit_calibration, log_loss

    rng = np.random.default_rng(0)
    margins = rng.normal(0, 4, 4000)
    labels = (rng.random(4000) < calibrated(margins, Calibration(scale=0.4))).astype(int)
    weights = np.ones(4000)
    fitted = fit_calibration(margins, labels, weights, "temperature")
    assert fitted.scale == pytest.approx(0.4, rel=0.15)
    assert fitted.bias == 0.0
    assert fitted.fitted_on["log_loss_after"] < fitted.fitted_on["log_loss_before"]
    platt = fit_calibration(margins + 2.0, labels, weights, "platt")
    assert platt.bias == pytest.approx(-0.8, abs=0.25)  # undoes the shift of 2 x 0.4
    assert log_loss(labels, calibrated(margins + 2.0, platt), weights) < log_loss(
        labels, calibrated(margins + 2.0, Calibration()), weights
    )


def test_calibration_refuses_a_model_that_ranks_at_chance() -> None:
    from training.calibrate.run import refuse_collapsed
    from training.errors import ModelCollapsedError

    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 200)
    weights = np.ones(len(labels))
    with pytest.raises(ModelCollapsedError, match="has not learnt the task"):
        refuse_collapsed(labels, rng.normal(size=len(labels)), weights, 0.6)
    # A model that ranks, even with scores squeezed into a narrow band, passes.
    squeezed = 1e-3 * (labels + rng.normal(scale=0.5, size=len(labels)))
    refuse_collapsed(labels, squeezed, weights, 0.6)


def test_calibrate_bundle_stores_settings_the_runner_applies(  # type: ignore[no-untyped-def]
    tiny_run, tmp_path: Path
) -> None:
    from training.calibrate.run import calibrate_bundle
    from training.config import CalibrateConfig
    from training.finetune.threshold import tune_threshold

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_run.exported.bundle_dir, bundle)
    before = read_manifest(bundle)
    result = calibrate_bundle(
        bundle,
        tiny_run.prepared.directory,
        CalibrateConfig(method="platt", chunking=ChunkingSettings(enabled=True, stride=16)),
    )
    after = read_manifest(bundle)  # hash still verifies: only bundle.json changed
    assert after.model_version == before.model_version == content_hash(bundle)
    assert after.calibration.method == "platt"
    assert after.chunking.enabled and after.chunking.stride == 16
    assert after.threshold == result.manifest.threshold
    runner = ModelRunner.from_bundle(bundle)
    validation = read_split(tiny_run.prepared.directory, "validation")
    texts = validation["text"].astype(str).tolist()
    scores = runner.predict_proba(texts)
    np.testing.assert_allclose(scores, calibrated(runner.margins(texts), after.calibration))
    # The threshold is tuned once, on exactly these shipped (calibrated) scores.
    assert after.threshold == pytest.approx(
        tune_threshold(validation["label"].to_numpy(), scores, 0.95)
    )
    assert "calibration" in (bundle / MANIFEST).read_text()


def _suite(tmp_path: Path, prepared: Path) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    test = read_split(prepared, "test")
    test[["text", "label", "language"]].to_csv(suite / "mixed.csv", sep="|", index=False)
    zeros = test[test["label"] == 0].head(15)
    zeros[["text", "label", "language"]].to_csv(suite / "all_zero.csv", sep="|", index=False)
    return suite


def test_suite_table_per_set_and_language_with_reference(  # type: ignore[no-untyped-def]
    tiny_run, tmp_path: Path
) -> None:
    from training.evaluate.suite import evaluate_suite, format_table, suite_scorers

    prepared = tiny_run.prepared.directory
    suite = _suite(tmp_path, prepared)
    scorers = suite_scorers(tiny_run.exported.bundle_dir, reference_data=prepared)
    assert set(scorers) == {"bundle", "tfidf"}
    result = evaluate_suite(scorers, suite, plots=tmp_path / "plots")
    rows = {(r["set"], r["language"]): r for r in result["models"]["bundle"]["rows"]}
    mixed = read_split(prepared, "test")
    assert rows[("mixed", "all")]["n"] == len(mixed)
    assert rows[("mixed", "all")]["positives"] == int(mixed["label"].sum())
    languages = set(mixed["language"])
    assert {lang for (s, lang) in rows if s == "mixed"} == {"all", *languages}
    zero = rows[("all_zero", "all")]
    assert zero["roc_auc"] is None and zero["precision"] is None
    threshold = result["models"]["bundle"]["threshold"]
    runner = ModelRunner.from_bundle(tiny_run.exported.bundle_dir)
    zeros = pd.read_csv(suite / "all_zero.csv", sep="|", keep_default_na=False)
    expected = float(np.mean(runner.predict_proba(zeros["text"].tolist()) >= threshold))
    assert zero["flag_rate"] == pytest.approx(expected)
    low, high = zero["flag_rate_ci"]
    assert low <= zero["flag_rate"] <= high and zero["roc_auc_ci"] is None
    mixed_row = rows[("mixed", "all")]
    assert mixed_row["roc_auc_ci"][0] <= mixed_row["roc_auc"] <= mixed_row["roc_auc_ci"][1]
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["mixed_roc_pr.png"]
    table = format_table(result)
    assert "| tfidf | mixed | all |" in table
    ci = mixed_row["roc_auc_ci"]
    assert f"{mixed_row['roc_auc']:.3f} ({ci[0]:.3f}–{ci[1]:.3f})" in table


def test_tfidf_reference_and_leave_one_source_out() -> None:
    from training.evaluate.loso import leave_one_source_out
    from training.evaluate.reference import TfidfReference

    rng = np.random.default_rng(0)
    sad = ["empty", "hopeless", "tired", "alone", "worthless", "crying", "numb", "exhausted"]
    fine = ["lovely", "match", "friends", "sunny", "dinner", "holiday", "garden", "music"]
    rows = []
    for source in ("alpha", "beta", "gamma"):
        for i in range(40):
            label = i % 2
            words = rng.choice(sad if label else fine, size=5).tolist()
            rows.append({"text": " ".join([*words, source]), "label": label, "source": source})
    frame = pd.DataFrame(rows)
    model = TfidfReference.fit(frame)
    scores = model.predict_proba(["hopeless and empty", "lovely dinner with friends"])
    assert scores[0] > 0.5 > scores[1]
    # A source of only zeros: its flag rate is its false-flag rate.
    zeros = pd.DataFrame(
        {
            "text": [" ".join(rng.choice(fine, size=5)) + " zeta" for _ in range(30)],
            "label": 0,
            "source": "z",
        }
    )
    held = pd.concat([frame, zeros], ignore_index=True)
    table = {r["source"]: r for r in leave_one_source_out(frame, frame, held)}
    assert set(table) == {"alpha", "beta", "gamma", "z"}
    assert table["alpha"]["roc_auc"] > 0.9  # the others carry the same signal
    assert table["z"]["roc_auc"] is None and table["z"]["flag_rate"] < 0.2


def test_cli_calibrate_then_report_writes_the_card(  # type: ignore[no-untyped-def]
    tiny_run, tmp_path: Path
) -> None:
    """`train calibrate` then `train report`: the card carries both tables, and
    `evaluate --suite --json` prints the same bundle rows."""
    import json

    from typer.testing import CliRunner

    from tests.training.test_evaluate import _cli

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_run.exported.bundle_dir, bundle)
    prepared = tiny_run.prepared.directory
    suite = _suite(tmp_path, prepared)
    cli = _cli()
    common = ["--bundle", str(bundle), "--data", str(prepared)]
    done = CliRunner().invoke(cli, ["train", "calibrate", *common, "--stride", "16"])
    assert done.exit_code == 0, done.output
    assert read_manifest(bundle).chunking.enabled
    out = tmp_path / "report"
    done = CliRunner().invoke(
        cli, ["train", "report", *common, "--suite", str(suite), "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Cross-domain dev suite" in card and "## Leave one source out" in card
    assert "| tfidf | mixed | all |" in card and "| bundle (truncated) | all_zero |" in card
    assert "temperature scaling" in card
    metadata = json.loads((prepared / "metadata.json").read_text())
    assert read_manifest(bundle).training_data["source_audit"] == metadata["source_audit"]
    stored = read_manifest(bundle).metrics["dev_suite"]["models"]["bundle"]["rows"]
    done = CliRunner().invoke(
        cli, ["evaluate", "--model", str(bundle), "--suite", str(suite), "--json"]
    )
    assert done.exit_code == 0, done.output
    printed = json.loads(done.stdout)["models"]["bundle"]["rows"]
    assert [r["f1"] for r in printed] == pytest.approx([r["f1"] for r in stored])
    assert (out / "loso.md").is_file() and (out / "suite.md").is_file()
