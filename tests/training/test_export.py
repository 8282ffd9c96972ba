"""Export: ONNX contract, fp32 and int8 parity, bundle contents and refusal of broken ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
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
    from services.inference.runner import ModelRunner

    bundle = tiny_run.exported.bundle_dir
    assert (bundle / MODEL_FILE).stat().st_size < tiny_run.exported.fp32_model.stat().st_size
    scorer = ModelRunner.from_bundle(bundle)
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


def test_bundle_names_inputs_without_machine_paths(tiny_run) -> None:  # type: ignore[no-untyped-def]
    """A bundle ships to other machines: inputs by name, rows and hash, never a path."""
    bundle = tiny_run.exported.bundle_dir
    manifest = read_manifest(bundle)
    (entry,) = manifest.training_data["inputs"]
    assert entry["name"] == "sample.csv"
    assert entry["rows"] > 0
    assert len(entry["sha256"]) == 64
    home = str(Path.home())
    for name in ("bundle.json", "MODEL_CARD.md"):
        text = (bundle / name).read_text(encoding="utf-8")
        # Anything shaped "/a/b" whose top folder exists here is this machine's path (ONNX
        # node names such as /output/dense/MatMul look alike but name no folder).
        shaped = re.findall(r"(?<![\w.:/])/(?:[\w.-]+/)+[\w.-]+", text)
        found = [p for p in shaped if Path("/" + p.split("/")[1]).exists()]
        assert not found, f"{name} records machine paths: {found[:5]}"
        assert home not in text and str(bundle.parent) not in text


def test_broken_bundles_are_refused(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from services.inference.runner import ModelRunner

    source = tiny_run.exported.bundle_dir
    missing = _copy(source, tmp_path / "a")
    (missing / TOKENIZER_FILE).unlink()
    with pytest.raises(BundleError, match=r"missing tokenizer\.json"):
        ModelRunner.from_bundle(missing)

    other_version = _copy(source, tmp_path / "b")
    manifest = json.loads((other_version / "bundle.json").read_text())
    manifest["format_version"] = 99
    (other_version / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99"):
        ModelRunner.from_bundle(other_version)

    tampered = _copy(source, tmp_path / "c")
    with (tampered / MODEL_FILE).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="changed after it was built"):
        ModelRunner.from_bundle(tampered)


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


def _graph(path: Path) -> onnx.GraphProto:
    return onnx.load(str(path)).graph


def test_default_recipe_int8_rows_fp32_outlier_channels_tanh_gelu(tiny_run) -> None:  # type: ignore[no-untyped-def]
    from training.export.quantize import OUTLIER_SUFFIX

    graph = _graph(tiny_run.exported.bundle_dir / MODEL_FILE)
    init = {i.name: i for i in graph.initializer}
    tables = [i for i in graph.initializer if i.name.endswith("word_embeddings.weight_int8")]
    assert len(tables) == 1 and tables[0].data_type == onnx.TensorProto.INT8
    assert not any(
        i.data_type == onnx.TensorProto.FLOAT
        and len(i.dims) == 2
        and i.dims[0] >= 1024
        and i.dims[1] > 1
        for i in init.values()
    ), "an fp32 vocabulary table is left"
    # Each of the tiny encoder's two FFNs has its fp32 side chain (in, GELU, out) and
    # its int8 rest; nothing is weight-only any more; every GELU is the tanh one.
    side = sorted(n.op_type for n in graph.node if n.name.endswith(OUTLIER_SUFFIX))
    assert side == ["FastGelu"] * 2 + ["MatMul"] * 4
    assert [n.op_type for n in graph.node].count("FastGelu") == 4
    assert not any(n.op_type == "BiasGelu" for n in graph.node)
    assert not any(n.op_type == "MatMulNBits" for n in graph.node)
    assert any(n.op_type == "MatMulInteger" for n in graph.node)


def test_per_row_embedding_matches_fp32(tmp_path: Path) -> None:
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from training.export.quantize import quantize_embedding_rows

    rng = np.random.default_rng(0)
    table = rng.normal(0, 0.1, (2000, 16)).astype(np.float32)
    table[7] *= 40  # an outlier row keeps its own scale
    ids = helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["n"])
    out = helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["n", 16])
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["out"], "g")],
        "g",
        [ids],
        [out],
        [numpy_helper.from_array(table, "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert quantize_embedding_rows(model) == ["g"]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    wanted = np.array([0, 7, 1999, 7], dtype=np.int64)
    (got,) = ort.InferenceSession(str(path)).run(None, {"ids": wanted})
    step = np.abs(table[wanted]).max(axis=1, keepdims=True) / 127
    assert np.all(np.abs(got - table[wanted]) <= step / 2 + 1e-7)


def test_excluded_nodes_stay_fp32(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.export.quantize import quantize

    optimized = tiny_run.exported.fp32_model.with_name("model-optimized.onnx")
    out = quantize(
        optimized, tmp_path / "q.onnx", per_channel=True, exclude=(r"/layer\.1/", r"^Attention_1$")
    )
    nodes = {n.name: n.op_type for n in _graph(out).node}
    for part in ("attention/output/dense", "intermediate/dense", "output/dense"):
        assert nodes[f"/model/bert/encoder/layer.1/{part}/MatMul"] == "MatMul"
    assert nodes["Attention_1"] == "Attention"
    assert nodes["/model/bert/encoder/layer.0/output/dense/MatMul_Q8"] == "MatMulNBits"
    assert any(n.endswith("_quant") for n in nodes if "layer.0/intermediate" in n)
