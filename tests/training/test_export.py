"""Export: ONNX contract, fp32 and int8 parity, bundle contents and refusal of broken ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from schemas.bundle import MODEL_FILE, TOKENIZER_FILE, read_manifest
from schemas.errors import BundleError

pytestmark = pytest.mark.training


def test_fp32_onnx_matches_pytorch(tiny_run) -> None:  # type: ignore[no-untyped-def]
    parity = tiny_run.exported.parity["onnx_fp32"]
    assert parity["n"] >= 400  # all the sample's validation texts, topped up from train
    assert parity["max_prob_diff"] < 1e-4
    assert parity["label_agreement"] == 1.0


def test_int8_parity_is_measured_and_reported(tiny_run) -> None:  # type: ignore[no-untyped-def]
    parity = tiny_run.exported.parity["onnx_int8"]
    # The 99.5 % bar is for real models; a tiny one crowds scores near its threshold.
    assert parity["argmax_agreement"] >= 0.9
    assert 0.0 <= parity["label_agreement"] <= 1.0
    manifest = read_manifest(tiny_run.exported.bundle_dir)
    assert manifest.metrics["parity"] == parity
    assert manifest.threshold == tiny_run.exported.parity["bundle_threshold"]


def test_int8_graph_is_smaller_and_dynamic(tiny_run) -> None:  # type: ignore[no-untyped-def]
    from training.evaluate.onnx_scorer import OnnxScorer

    bundle = tiny_run.exported.bundle_dir
    assert (bundle / MODEL_FILE).stat().st_size < tiny_run.exported.fp32_model.stat().st_size
    scorer, _ = OnnxScorer.from_bundle(bundle)
    for batch, length in ((1, 3), (5, 40), (2, 128)):
        ids = np.full((batch, length), 5, dtype=np.int64)
        assert scorer.run_batch(ids.tolist()).shape == (batch, 2)


def test_manifest_records_data_metrics_and_normalisation(tiny_run) -> None:  # type: ignore[no-untyped-def]
    manifest = read_manifest(tiny_run.exported.bundle_dir)
    assert manifest.training_data["rows"] == tiny_run.prepared.rows
    assert manifest.metrics["test"]["n"] == tiny_run.prepared.rows["test"]
    assert manifest.normalization.drop_mentions
    assert manifest.max_sequence_length == 128


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_broken_bundles_are_refused(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.evaluate.onnx_scorer import OnnxScorer

    source = tiny_run.exported.bundle_dir
    missing = _copy(source, tmp_path / "a")
    (missing / TOKENIZER_FILE).unlink()
    with pytest.raises(BundleError, match=r"missing tokenizer\.json"):
        OnnxScorer.from_bundle(missing)

    other_version = _copy(source, tmp_path / "b")
    manifest = json.loads((other_version / "bundle.json").read_text())
    manifest["format_version"] = 99
    (other_version / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99"):
        OnnxScorer.from_bundle(other_version)

    tampered = _copy(source, tmp_path / "c")
    with (tampered / MODEL_FILE).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="changed after it was built"):
        OnnxScorer.from_bundle(tampered)


def test_parity_below_the_bar_refuses_the_bundle(tiny_run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from training.config import ExportConfig
    from training.errors import ParityError
    from training.export import run as export_run

    def disagree(reference: np.ndarray, candidate: np.ndarray, threshold: float) -> dict:  # type: ignore[type-arg]
        return {"n": len(reference), "label_agreement": 0.9}

    monkeypatch.setattr(export_run, "parity", disagree)
    with pytest.raises(ParityError, match=r"below 0\.995"):
        export_run.export_bundle(
            tiny_run.finetuned.model_dir,
            tiny_run.prepared.directory,
            tmp_path / "bundle",
            ExportConfig(),
            work_dir=tmp_path / "w",
            log=False,
        )
    assert not (tmp_path / "bundle").exists()
