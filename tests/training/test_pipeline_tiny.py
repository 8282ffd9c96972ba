"""The tiny bundle the service tests use: built by the real chain, loadable, torch-free scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from schemas.bundle import MODEL_CARD, MODEL_FILE, TOKENIZER_FILE, content_hash, read_manifest
from training.prepare.run import read_split

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.pipeline import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory.mktemp("tiny") / "bundle")


def test_bundle_has_every_file_and_a_valid_manifest(bundle: Path) -> None:
    manifest = read_manifest(bundle)
    for name in (MODEL_FILE, TOKENIZER_FILE, MODEL_CARD):
        assert (bundle / name).is_file()
    assert manifest.model_version == content_hash(bundle)
    assert 0.0 <= manifest.threshold <= 1.0
    assert manifest.quantization and "int8" in manifest.quantization
    assert set(manifest.metrics["test"]["per_language"]) <= {"en", "de", "fr", "it", "pt", "es"}
    assert "never a diagnosis" in (bundle / MODEL_CARD).read_text()


def test_graph_has_the_contracted_inputs_and_dynamic_axes(bundle: Path) -> None:
    graph = onnx.load(str(bundle / MODEL_FILE)).graph

    def dims(value: onnx.ValueInfoProto) -> list[str | int]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    inputs = {i.name: i for i in graph.input}
    assert set(inputs) == {"input_ids", "attention_mask"}
    for value in inputs.values():
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert dims(value) == ["batch", "sequence"]
    (output,) = graph.output
    assert output.name == "logits"
    assert dims(output) == ["batch", 2]
    assert any(
        node.op_type.startswith(("MatMulInteger", "DynamicQuantize", "QAttention"))
        for node in graph.node
    ), "graph is not int8-quantized"


TEXTS = [
    "I feel empty and hopeless every single day.",
    "Lovely walk in the park! @user",
    "Ich bin heute so müde und nichts hat mehr einen Sinn.",
]


def test_padding_does_not_change_a_score(tiny_run) -> None:  # type: ignore[no-untyped-def]
    """On the fp32 graph a text scores the same alone and padded among longer texts: a
    padding bug (wrong pad id, mask not passed) would move it far beyond float rounding.
    The int8 graph cannot show this exactly: its activations get one dynamic scale per
    run, so its scores move with their run-mates (test below)."""
    from services.inference.runner import ModelRunner

    bundle = tiny_run.exported.bundle_dir
    scorer = ModelRunner(tiny_run.exported.fp32_model, bundle / TOKENIZER_FILE)
    texts = read_split(tiny_run.prepared.directory, "test")["text"].astype(str).head(40).tolist()
    together = scorer.predict_proba(texts + TEXTS, batch_size=64)
    alone = np.array([scorer.predict_proba([t])[0] for t in texts + TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_scores_without_torch_and_parity_was_measured(bundle: Path, sample_csv: Path) -> None:
    from services.inference.runner import ModelRunner

    scorer = ModelRunner.from_bundle(bundle)
    texts = TEXTS + pd.read_csv(sample_csv, sep="|")["text"].astype(str).head(60).tolist()
    batched = scorer.predict_proba(texts, batch_size=32)
    one_by_one = np.array([scorer.predict_proba([t])[0] for t in texts])
    assert np.all((batched >= 0) & (batched <= 1))
    # Dynamic int8 quantizes activations with one scale per run, so a tiny model's score
    # moves with its run-mates: by 3e-3 to 5e-3 on most texts, by 0.09 for one the tiny
    # model scored 0.50 on another CPU (the steepest point of the sigmoid). One text may
    # move as far as the parity check allows against PyTorch; a broken batch moves all.
    moved = np.abs(batched - one_by_one)
    assert moved.max() < 0.5
    assert moved.mean() < 0.02
    parity = json.loads((bundle / "bundle.json").read_text())["metrics"]["parity"]
    assert parity["n"] >= 100
    # A tiny over-confident model crowds its scores near its (high) tuned threshold, where
    # int8 rounding flips labels; agreement at 0.5 and the probability gap are the checks.
    # One text of a 32-wide model can move a lot under int8 (seen: 0.2 in some builds);
    # a broken quantization moves them all, which the mean catches.
    assert parity["argmax_agreement"] >= 0.9
    assert parity["mean_prob_diff"] < 0.02
    assert parity["max_prob_diff"] < 0.5
