"""Quantization-aware tuning: the simulation rounds as onnxruntime's int8 graph does, and
tuning under it brings the int8 logits toward the fine-tuned model's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

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
    for unsimulated in ("fused-smooth-all", "fused-outliers-fp32", "fused-outliers-tanh"):
        with pytest.raises(ConfigurationError, match="SmoothQuant, fp32 outlier"):
            linear_modes(model, RECIPES[unsimulated])


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

    from training.export.calibration import calibration_feeds
    from training.export.onnx_export import load_for_export
    from training.export.quant_aware import _quantize_rows_, simulated_int8
    from training.export.quantize import quantize_recipe

    model_dir = tiny_run.finetuned.model_dir
    recipe = RECIPES["fused-per-channel"]
    graph = quantize_recipe(tiny_run.exported.fp32_model, tmp_path, model_dir, recipe)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    texts = _train_texts(tiny_run)[:40]
    feeds = calibration_feeds(model_dir, texts, inputs, batch_size=1)
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


class _Outlier(torch.nn.Module):
    """Token embeddings -> Linear -> ReLU -> mean -> Linear, with one embedding channel
    60x the others: the int8 rounding of the first Linear's input (one range for the
    whole tensor) then costs the other channels most of their resolution, as activation
    outliers do in transformers."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = torch.nn.Embedding(50, 16)
        with torch.no_grad():
            self.embed.weight[:, 0] *= 60
        self.up = torch.nn.Linear(16, 32)
        self.down = torch.nn.Linear(32, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        mask = attention_mask[..., None].float()
        hidden = (torch.relu(self.up(self.embed(input_ids))) * mask).sum(1) / mask.sum(1)
        return SimpleNamespace(logits=self.down(hidden))


def test_tuning_brings_the_int8_logits_toward_the_fp32_ones() -> None:
    """On four seeds of the toy, tuning never makes the simulated int8 error worse and
    halves it on average (one seed alone is a noisy measure: Adam moves every weight)."""
    from training.export.quant_aware import simulated_int8, tune_under_int8
    from training.finetune.data import pad_batch

    recipe = RECIPES["fused-per-channel"]
    ratios = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        input_ids = [rng.integers(1, 50, size=rng.integers(3, 12)).tolist() for _ in range(256)]
        model = _Outlier(seed)
        batch = pad_batch(input_ids, 0)
        with torch.no_grad():  # the toy's mean over real tokens ignores padding
            target = model(**batch).logits

        def int8_error(
            model: _Outlier = model, batch: dict = batch, target: torch.Tensor = target
        ) -> float:
            with torch.no_grad(), simulated_int8(model, recipe):
                logits = model(**batch).logits
            return float(np.mean((centred(logits.numpy()) - centred(target.numpy())) ** 2))

        before = int8_error()
        config = QuantAwareConfig(steps=200, batch_size=32, learning_rate=3e-4, progress=False)
        history = tune_under_int8(model, input_ids, target, 0, recipe, config, rng)  # type: ignore[arg-type]
        assert [h["step"] for h in history] == list(range(25, 201, 25))
        ratios.append(int8_error() / before)
    assert max(ratios) < 1.0
    assert float(np.mean(ratios)) < 0.7


def test_tuning_without_texts_is_refused_not_a_hang() -> None:
    from training.export.quant_aware import tune_under_int8

    config = QuantAwareConfig(steps=5, batch_size=4, progress=False)
    with pytest.raises(ConfigurationError, match="needs training texts"):
        tune_under_int8(
            _Outlier(0),
            [],
            torch.zeros(0, 2),
            0,
            RECIPES["fused-per-channel"],
            config,
            np.random.default_rng(0),
        )


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
