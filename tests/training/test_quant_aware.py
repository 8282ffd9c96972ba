"""Quantization-aware tuning: the simulation rounds as onnxruntime's int8 graph does, and
tuning under it brings the int8 logits toward the fine-tuned model's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from schemas.errors import ConfigurationError
from training.config import RECIPES, ExportConfig, QuantAwareConfig

pytestmark = pytest.mark.training


def test_fake_activation_quantization_is_onnx_dynamic_quantize_linear() -> None:
    import onnxruntime as ort

    from training.export.quant_aware import fake_quant_activation

    graph = helper.make_graph(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
        ],
        "dql",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for x in (
        rng.normal(size=(3, 7, 16)).astype(np.float32) * 4,
        np.abs(rng.normal(size=(5, 8))).astype(np.float32),  # all positive: 0 still in range
        np.concatenate([rng.normal(size=(1, 63)), [[40.0]]], axis=1).astype(np.float32),
    ):
        (expected,) = session.run(None, {"x": x})
        got = fake_quant_activation(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert len(np.unique(got)) <= 256


def test_weights_round_per_output_channel_and_gradients_pass_straight_through() -> None:
    from training.export.quant_aware import FakeQuantWeight

    weight = torch.tensor([[0.5, -0.25, 0.1], [100.0, 1.0, -3.0]], requires_grad=True)
    rounded = FakeQuantWeight("int8", per_channel=True)(weight)
    # Row 0's small values keep their own scale; row 1's outlier does not coarsen row 0.
    assert torch.allclose(rounded[0], weight[0], atol=0.5 / 127)
    assert rounded[1, 1].item() == pytest.approx(100.0 / 127)  # 1.0 rounds to one step
    per_tensor = FakeQuantWeight("int8", per_channel=False)(weight)
    assert per_tensor[0, 2].item() == 0.0  # 0.1 is under half a step of 100/127
    rounded.sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))  # type: ignore[arg-type]


def test_modes_follow_the_recipes_node_patterns(tiny_run) -> None:  # type: ignore[no-untyped-def]
    from training.export.onnx_export import load_for_export
    from training.export.quant_aware import linear_modes, onnx_matmul_name

    assert (
        onnx_matmul_name("bert.encoder.layer.10.output.dense")
        == "/model/bert/encoder/layer.10/output/dense/MatMul"
    )
    model = load_for_export(tiny_run.finetuned.model_dir)
    modes = linear_modes(model, RECIPES["rows-ffn8"])
    ffn_out = [n for n in modes if n.endswith(".output.dense") and ".attention." not in n]
    assert ffn_out and {modes[n] for n in ffn_out} == {"weight_only"}
    assert {m for n, m in modes.items() if n not in ffn_out} == {"int8"}
    lower = linear_modes(model, RECIPES["rows-ffn8-lower"])  # 2 layers: layer 0's only
    assert [n for n in ffn_out if lower[n] == "weight_only"] == [
        n for n in ffn_out if ".layer.0." in n
    ]
    # The layer-sensitivity recipes name the fused node: its query, key and value stay fp32.
    layer0 = replace(RECIPES["fused-per-channel"], exclude_nodes=(r"^Attention_0$",))
    modes = linear_modes(model, layer0)
    assert {n.rsplit(".", 1)[-1] for n, m in modes.items() if m == "fp32"} == {
        "query",
        "key",
        "value",
    }
    with pytest.raises(ConfigurationError, match="SmoothQuant"):
        linear_modes(model, RECIPES["fused-smooth-all"])


def centred(logits: np.ndarray) -> np.ndarray:
    return np.asarray(logits - logits.mean(axis=1, keepdims=True))


def _logits(model: torch.nn.Module, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate(
            [model(**{k: torch.from_numpy(v) for k, v in f.items()}).logits.numpy() for f in feeds]
        )


def test_the_simulation_predicts_the_int8_graphs_error(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Scored one text at a time: the simulated model's logits sit much closer to
    onnxruntime's int8 graph than the fp32 model's do; its weights are untouched after."""
    import onnxruntime as ort

    from training.export.onnx_export import load_for_export
    from training.export.quant_aware import _quantize_rows_, simulated_int8
    from training.export.quantize import _calibration_feeds, quantize_recipe

    model_dir = tiny_run.finetuned.model_dir
    recipe = RECIPES["fused-per-channel"]
    graph = quantize_recipe(tiny_run.exported.fp32_model, tmp_path, model_dir, recipe)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    texts = _train_texts(tiny_run)[:40]
    feeds = _calibration_feeds(model_dir, texts, inputs, batch_size=1)
    int8 = np.concatenate([session.run(None, f)[0] for f in feeds])

    model = load_for_export(model_dir)
    fp32 = _logits(model, feeds)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _quantize_rows_(model.get_input_embeddings().weight)
    with simulated_int8(model, recipe):
        simulated = _logits(model, feeds)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "word_embeddings" not in k)
    assert not any("parametrizations" in k for k in after)

    def margin(x: np.ndarray) -> np.ndarray:
        return np.asarray(x[:, 1] - x[:, 0])

    error = np.abs(margin(fp32) - margin(int8)).mean()
    assert error > 0  # the tiny model is changed by int8 at all
    assert np.abs(margin(simulated) - margin(int8)).mean() < 0.5 * error


def test_tuning_brings_the_int8_logits_toward_the_fine_tuned_model(
    tiny_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from training.export.onnx_export import load_for_export
    from training.export.quant_aware import (
        _quantize_rows_,
        quant_aware_tune,
        simulated_int8,
    )
    from training.finetune.data import encode_texts, pad_batch
    from training.finetune.result import FinetuneResult
    from training.tokenizer_loading import load_tokenizer

    model_dir = tiny_run.finetuned.model_dir
    # Per-tensor weights: the tiny model's largest int8 error. Small steps, as Adam's
    # first steps move every weight by about the learning rate.
    recipe = RECIPES["fused-per-tensor"]
    config = QuantAwareConfig(steps=30, learning_rate=1e-6, device="cpu", progress=False)
    tuned = quant_aware_tune(
        model_dir, tiny_run.prepared.directory, tmp_path / "tuned", recipe, config
    )
    info = FinetuneResult.load(model_dir)
    assert tuned.config["quant_aware"]["steps"] == 30
    assert tuned.max_length == info.max_length and tuned.data == info.data

    tokenizer = load_tokenizer(model_dir)
    ids = encode_texts(_train_texts(tiny_run), tokenizer, info.max_length, info.normalization)
    batch = pad_batch(ids, int(tokenizer.pad_token_id or 0))
    feeds = [{k: v.numpy() for k, v in batch.items()}]
    target = _logits(load_for_export(model_dir), feeds)

    def int8_error(directory: Path) -> float:
        model = load_for_export(directory)
        _quantize_rows_(model.get_input_embeddings().weight)
        with simulated_int8(model, recipe):
            logits = _logits(model, feeds)
        return float(
            np.mean(
                (logits - logits.mean(1, keepdims=True) - target + target.mean(1, keepdims=True))
                ** 2
            )
        )

    assert int8_error(tmp_path / "tuned") < int8_error(model_dir)


def test_export_quantizes_the_tuned_weights_and_measures_parity_on_the_original(
    tiny_run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from schemas.bundle import read_manifest
    from training.export.run import export_bundle

    config = ExportConfig(
        recipe="fused-per-channel",
        enforce_parity=False,
        parity_texts=60,
        quant_aware=QuantAwareConfig(steps=5, learning_rate=1e-3, device="cpu", progress=False),
    )
    result = export_bundle(
        tiny_run.finetuned.model_dir,
        tiny_run.prepared.directory,
        tmp_path / "bundle",
        config,
        work_dir=tmp_path / "work",
        log=False,
    )
    assert (tmp_path / "work" / "quant-aware-model" / "training_info.json").is_file()
    assert "quantization-aware tuned for 5 steps" in read_manifest(result.bundle_dir).quantization
    # The reference is the fine-tuned model, so the tuned weights' own fp32 graph departs
    # from it (against itself it would agree to ~1e-6).
    assert result.parity["onnx_fp32"]["max_prob_diff"] > 1e-3
    with pytest.raises(ConfigurationError, match="SmoothQuant"):
        export_bundle(
            tiny_run.finetuned.model_dir,
            tiny_run.prepared.directory,
            tmp_path / "smoothed",
            replace(config, recipe="fused-smooth-all"),
            work_dir=tmp_path / "smoothed-work",
            log=False,
        )


def _train_texts(tiny_run) -> list[str]:  # type: ignore[no-untyped-def]
    from training.prepare.run import read_split

    return read_split(tiny_run.prepared.directory, "train")["text"].astype(str).tolist()


def test_quant_aware_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="steps"):
        QuantAwareConfig(steps=-1)
    assert ExportConfig().quant_aware.steps == 0
