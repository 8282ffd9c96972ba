"""Quantization recipes: each builds a working graph of its own shape; the comparison
table measures parity, speed against fp32 and size for each."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from schemas.errors import ConfigurationError
from tests.support.cli import train_cli
from training.config import DEFAULT_RECIPE, RECIPES, ExportConfig

pytestmark = pytest.mark.training


def _ops(path: Path) -> dict[str, str]:
    return {n.name: n.op_type for n in onnx.load(str(path)).graph.node}


def test_recipe_names_are_checked_and_overrides_apply() -> None:
    with pytest.raises(ConfigurationError, match="unknown recipe"):
        ExportConfig(recipe="fastest-please")
    config = ExportConfig(recipe="fused-per-channel", per_channel=False, exclude_nodes=("^x$",))
    assert config.quantization.per_channel is False
    assert config.quantization.exclude_nodes == ("^x$",)
    assert ExportConfig().quantization == RECIPES[DEFAULT_RECIPE]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_a_graph_of_its_shape(tiny_run, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    from services.inference.runner import ModelRunner
    from training.export.quantize import quantize_recipe

    recipe = RECIPES[name]
    model_dir = tiny_run.finetuned.model_dir
    calibration = _train_texts(tiny_run)
    path = quantize_recipe(tiny_run.exported.fp32_model, tmp_path, model_dir, recipe, calibration)
    ops = _ops(path)
    values = set(ops.values())
    smoothed = [n for n in ops if n.endswith("_smooth")]
    assert bool(smoothed) == bool(recipe.smooth_nodes)
    assert ("Attention" in values or "QAttention" in values) == recipe.fuse
    assert "SkipLayerNormalization" not in values  # undone after fusion (layer_norm)
    assert ("FastGelu" in values) == recipe.tanh_gelu
    assert ("BiasGelu" in values) == (recipe.fuse and not recipe.tanh_gelu)
    assert ("MatMulNBits" in values) == bool(recipe.weight_only_nodes)
    int8_table = any(n.endswith("word_embeddings.weight_int8") for n in _init_names(path))
    assert int8_table == recipe.int8_embedding_rows
    ffn_out = [n for n in ops if "/output/dense/MatMul" in n and "attention" not in n]
    if recipe.exclude_nodes and "output" in recipe.exclude_nodes[0]:
        assert {ops[n] for n in ffn_out} == {"MatMul"}  # left fp32
    assert ("DynamicQuantizeLinear" in values) != recipe.static_activations
    int8_matmuls = {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
    assert values & int8_matmuls
    bundle = tiny_run.exported.bundle_dir
    scorer = ModelRunner(path, bundle / "tokenizer.json", max_length=128)
    scores = scorer.predict_proba(["ich bin so müde", "a sunny day at the beach"])
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_weight_only_goes_to_the_lower_layers_only(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.export.quantize import in_lower_layers, quantize_recipe

    names = [f"/model/bert/encoder/layer.{i}/output/dense/MatMul" for i in range(12)]
    assert in_lower_layers([*names, "/pooler/MatMul"], 0.5) == [*names[:6], "/pooler/MatMul"]
    assert in_lower_layers(names[:6], 0.5) == names[:3]  # a 6-layer student: its lower 3
    assert in_lower_layers(names[:1], 0.1) == names[:1]  # never none
    recipe = RECIPES["rows-ffn8-lower"]
    path = quantize_recipe(
        tiny_run.exported.fp32_model, tmp_path, tiny_run.finetuned.model_dir, recipe
    )
    ops = _ops(path)
    ffn_out = {
        int(n.split("/layer.")[1].split("/")[0]): op
        for n, op in ops.items()
        if "/output/dense/MatMul" in n and "attention" not in n
    }
    assert ffn_out[0] == "MatMulNBits"  # the tiny encoder's 2 layers: the lower is layer 0
    assert ffn_out[1] != "MatMulNBits"


def _init_names(path: Path) -> list[str]:
    return [i.name for i in onnx.load(str(path)).graph.initializer]


def test_recipe_table_measures_parity_speed_and_size(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.evaluate.recipes import (
        compare_recipes,
        ffn_output_sensitivity,
        layer_sensitivity,
        pick,
    )

    chosen = (
        pick("rows-ffn8,dynamic")
        | layer_sensitivity("fused-per-channel", 1)
        | ffn_output_sensitivity(1)
    )
    rows = compare_recipes(
        tiny_run.finetuned.model_dir,
        tiny_run.prepared.directory,
        tmp_path,
        chosen,
        bench_texts=40,
        batch_sizes=(8, 16),
        repeats=1,
        threads=1,
        rounds=2,
    )
    assert [r["recipe"] for r in rows] == ["fp32", *chosen]
    fp32 = rows[0]
    # fp32 ONNX against PyTorch: the same numbers.
    assert fp32["parity"]["label_agreement"] == 1.0
    assert fp32["parity"]["n"] == _validation(tiny_run)
    for r in rows:
        assert r["texts_per_s"] > 0 and r["best_batch"] in (8, 16)
        # Speed is the median of the interleaved rounds, the ratio one of medians.
        assert len(r["texts_per_s_rounds"]) == 2
        assert r["texts_per_s"] == pytest.approx(np.median(r["texts_per_s_rounds"]))
        assert r["speedup_vs_fp32"] == pytest.approx(r["texts_per_s"] / fp32["texts_per_s"])
        # ... and each round's own ratio beside it.
        assert r["speedup_rounds"] == pytest.approx(
            [
                a / b
                for a, b in zip(r["texts_per_s_rounds"], fp32["texts_per_s_rounds"], strict=True)
            ]
        )
    assert fp32["speedup_rounds"] == pytest.approx([1.0, 1.0])
    sizes = {r["recipe"]: r["size_mib"] for r in rows}
    assert sizes["rows-ffn8"] < sizes["fp32"] and sizes["dynamic"] < sizes["fp32"]
    saved = json.loads((tmp_path / "recipes.json").read_text())
    assert [r["recipe"] for r in saved] == [r["recipe"] for r in rows]
    text = (tmp_path / "recipes.txt").read_text()
    assert "fused-per-channel+fp32:layer.0" in text and "x fp32" in text and "per round" in text
    assert "median of 2 interleaved rounds" in text
    assert "rows-ffn8:layer.0" in text
    assert (tmp_path / "recipes.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ConfigurationError, match="unknown recipes"):
        pick("dynamic,nope")


def _validation(tiny_run) -> int:  # type: ignore[no-untyped-def]
    return int(tiny_run.prepared.rows["validation"])


def _train_texts(tiny_run, n: int = 64) -> list[str]:  # type: ignore[no-untyped-def]
    from training.prepare.run import read_split

    return read_split(tiny_run.prepared.directory, "train")["text"].head(n).tolist()


def test_smoothing_keeps_the_fp32_function(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """x / s times W * s is the same product: the smoothed fp32 graph scores as before,
    and the weights' rows really were rescaled."""
    from services.inference.runner import ModelRunner
    from training.config import FFN_OUTPUT_MATMUL
    from training.export.quantize import optimize, smooth_matmul_inputs

    model_dir = tiny_run.finetuned.model_dir
    fused = optimize(tiny_run.exported.fp32_model, tmp_path / "fused.onnx", model_dir)
    smoothed = tmp_path / "smoothed.onnx"
    done = smooth_matmul_inputs(
        fused, smoothed, (FFN_OUTPUT_MATMUL,), model_dir, _train_texts(tiny_run), 0.5
    )
    assert len(done) == 2  # one FFN output projection per layer
    tokenizer = tiny_run.exported.bundle_dir / "tokenizer.json"
    texts = _train_texts(tiny_run, 40)
    before = ModelRunner(fused, tokenizer, max_length=128).predict_proba(texts)
    after = ModelRunner(smoothed, tokenizer, max_length=128).predict_proba(texts)
    assert np.max(np.abs(before - after)) < 1e-4
    inits = {
        i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(smoothed)).graph.initializer
    }
    scales = [v for k, v in inits.items() if k.endswith("_smooth_inv")]
    assert len(scales) == 2 and not all(np.allclose(s, 1.0) for s in scales)


@pytest.mark.parametrize(
    "name", ["fused-smooth-ffn-out", "fused-outliers-fp32", "fused-outliers-tanh-static"]
)
def test_calibrated_recipes_need_calibration_texts(tiny_run, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    from training.export.quantize import quantize_recipe

    with pytest.raises(ConfigurationError, match="calibration texts"):
        quantize_recipe(
            tiny_run.exported.fp32_model, tmp_path, tiny_run.finetuned.model_dir, RECIPES[name]
        )


def test_static_scales_are_dynamic_quantizations_of_the_calibrated_range() -> None:
    """A range's scale and zero point are the ones ONNX's DynamicQuantizeLinear derives
    from a tensor spanning that range (0 included; zero point rounded half to even)."""
    import onnxruntime as ort

    from training.export.static_activations import ActivationRange

    node = onnx.helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None])],
        [
            onnx.helper.make_tensor_value_info("q", onnx.TensorProto.UINT8, [None]),
            onnx.helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, []),
            onnx.helper.make_tensor_value_info("z", onnx.TensorProto.UINT8, []),
        ],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for low, high in [(-0.17, 5.5), (-11.0, 44.0), (0.3, 2.0), (-3.0, -1.0), (0.0, 0.0)]:
        x = np.array([low, (low + high) / 2, high], dtype=np.float32)
        _, scale, zero_point = session.run(None, {"x": x})
        ours = ActivationRange(low, high).uint8_parameters()
        assert ours[0] == pytest.approx(float(scale), rel=1e-6), (low, high)
        assert int(ours[1]) == int(zero_point), (low, high)


def test_static_activation_scales_replace_the_per_batch_scan(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every DynamicQuantizeLinear becomes a QuantizeLinear with a constant scale that
    covers the activation on the calibration texts, every int8 MatMul one
    MatMulIntegerToFloat with its bias folded in, and the graph scores as the dynamic
    one does within int8 noise."""
    from services.inference.runner import ModelRunner
    from training.export.calibration import probe_real_rows
    from training.export.quantize import quantize_recipe
    from training.export.static_activations import fix_activation_scales

    model_dir = tiny_run.finetuned.model_dir
    calibration = _train_texts(tiny_run)
    dynamic_path = quantize_recipe(
        tiny_run.exported.fp32_model,
        tmp_path,
        model_dir,
        RECIPES["fused-outliers-tanh"],
        calibration,
    )
    static_path = tmp_path / "static.onnx"
    fixed = fix_activation_scales(dynamic_path, static_path, model_dir, calibration)
    dynamic, static = onnx.load(str(dynamic_path)), onnx.load(str(static_path))
    count = Counter(n.op_type for n in dynamic.graph.node)
    ops = Counter(n.op_type for n in static.graph.node)
    assert fixed == count["DynamicQuantizeLinear"] == ops["QuantizeLinear"] > 0
    assert ops["MatMulIntegerToFloat"] == count["MatMulInteger"] > 0
    assert not ops["DynamicQuantizeLinear"] and not ops["MatMulInteger"]
    assert ops["Add"] < count["Add"]  # bias Adds folded into the products

    inits = {i.name: onnx.numpy_helper.to_array(i) for i in static.graph.initializer}
    quantizers = [n for n in static.graph.node if n.op_type == "QuantizeLinear"]
    batches = list(
        probe_real_rows(dynamic, [n.input[0] for n in quantizers], model_dir, calibration)
    )
    for node in quantizers:
        scale, zero_point = float(inits[node.input[1]]), int(inits[node.input[2]])
        low, high = -zero_point * scale, (255 - zero_point) * scale
        seen_low = min(0.0, *(float(b[node.input[0]].min()) for b in batches))
        seen_high = max(0.0, *(float(b[node.input[0]].max()) for b in batches))
        # The fixed range is what the calibration texts produce, to one int8 step.
        assert seen_low == pytest.approx(low, abs=scale), node.name
        assert seen_high == pytest.approx(high, abs=scale), node.name

    tokenizer = tiny_run.exported.bundle_dir / "tokenizer.json"
    texts = _train_texts(tiny_run, 200)[64:]
    before = ModelRunner(dynamic_path, tokenizer, max_length=128).predict_proba(texts)
    after = ModelRunner(static_path, tokenizer, max_length=128).predict_proba(texts)
    assert np.mean((before > 0.5) == (after > 0.5)) >= 0.95
    assert np.median(np.abs(before - after)) < 0.05


def test_train_export_recipe_option(tiny_run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from schemas.bundle import MODEL_FILE, read_manifest

    monkeypatch.setenv("DEPDETECT_DATA__WORK_DIR", str(tmp_path / "work"))
    app = train_cli()
    common = [
        "train",
        "export",
        "--model-dir",
        str(tiny_run.finetuned.model_dir),
        "--data",
        str(tiny_run.prepared.directory),
        "--no-enforce-parity",
        "--parity-texts",
        "50",
    ]
    bundle = tmp_path / "b"
    tuned = ["--quant-aware-steps", "2", "--device", "cpu"]
    done = CliRunner().invoke(
        app, [*common, "--bundle", str(bundle), "--recipe", "dynamic", *tuned]
    )
    assert done.exit_code == 0, done.output
    manifest = read_manifest(bundle)
    assert manifest.quantization.startswith("recipe dynamic:")
    assert manifest.metrics["export"]["recipe"] == "dynamic"
    assert manifest.metrics["export"]["quant_aware"]["steps"] == 2
    assert "quantization-aware tuned for 2 steps" in manifest.quantization
    assert "Attention" not in set(_ops(bundle / MODEL_FILE).values())  # unfused
    refused = CliRunner().invoke(app, [*common, "--bundle", str(tmp_path / "c"), "--recipe", "x"])
    assert refused.exit_code != 0 and "unknown recipe" in refused.output


def test_outlier_channels_move_to_an_fp32_side_chain(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The split graph computes the same function in fp32; the side chain takes exactly
    the widest channels, so what int8 quantizes is left with the next widest's range;
    and the quantized graph leaves the side chain fp32."""
    from services.inference.runner import ModelRunner
    from training.export.quantize import (
        OUTLIER_SUFFIX,
        channel_amax,
        optimize,
        quantize_recipe,
        split_outlier_channels,
    )

    model_dir = tiny_run.finetuned.model_dir
    calibration = _train_texts(tiny_run)
    fused = optimize(tiny_run.exported.fp32_model, tmp_path / "fused.onnx", model_dir)
    split = tmp_path / "split.onnx"
    done = split_outlier_channels(fused, split, model_dir, calibration, 3)
    assert len(done) == 2  # one FFN per layer of the tiny encoder
    tokenizer = tiny_run.exported.bundle_dir / "tokenizer.json"
    texts = _train_texts(tiny_run, 40)
    before = ModelRunner(fused, tokenizer, max_length=128).margins(texts)
    after = ModelRunner(split, tokenizer, max_length=128).margins(texts)
    np.testing.assert_allclose(after, before, atol=1e-4)

    graph = onnx.load(str(split))
    intermediates = [n.input[0] for n in graph.graph.node if n.name in done]
    whole = channel_amax(onnx.load(str(fused)), intermediates, model_dir, calibration)
    rest = channel_amax(graph, intermediates, model_dir, calibration)
    for name in intermediates:
        assert len(rest[name]) == len(whole[name]) - 3
        assert rest[name].max() == pytest.approx(np.sort(whole[name])[-4], rel=1e-4)

    ops = _ops(
        quantize_recipe(
            tiny_run.exported.fp32_model,
            tmp_path,
            model_dir,
            RECIPES["fused-outliers-fp32"],
            calibration,
        )
    )
    side = {n: op for n, op in ops.items() if n.endswith(OUTLIER_SUFFIX)}
    assert sorted(side.values()) == ["BiasGelu"] * 2 + ["MatMul"] * 4
    # The rest is quantized: no fp32 MatMul is left outside the side chain but the
    # attention's own products (inside the fused Attention) and the classifier head's.
    plain = [n for n, op in ops.items() if op == "MatMul" and not n.endswith(OUTLIER_SUFFIX)]
    assert not any("/output/dense/" in n or "/intermediate/" in n for n in plain), plain


def test_skip_layer_norm_fusion_is_undone_without_changing_the_function(  # type: ignore[no-untyped-def]
    tiny_run, tmp_path: Path, monkeypatch
) -> None:
    """ORT's fused SkipLayerNormalization becomes Add (+ bias Add) + LayerNormalization,
    scoring as the fused graph did; an opset without LayerNormalization keeps it."""
    from services.inference.runner import ModelRunner
    from training.export import quantize
    from training.export.layer_norm import unfuse_skip_layer_norm

    model_dir = tiny_run.finetuned.model_dir
    fp32 = tiny_run.exported.fp32_model
    with monkeypatch.context() as patch:
        patch.setattr(quantize, "unfuse_skip_layer_norm", lambda model: 0)
        fused = quantize.optimize(fp32, tmp_path / "fused.onnx", model_dir)
    unfused = quantize.optimize(fp32, tmp_path / "unfused.onnx", model_dir)
    fused_ops = list(_ops(fused).values())
    unfused_ops = list(_ops(unfused).values())
    skips = fused_ops.count("SkipLayerNormalization")
    assert skips == 4  # two per layer of the tiny encoder
    assert "SkipLayerNormalization" not in unfused_ops
    assert unfused_ops.count("LayerNormalization") == fused_ops.count("LayerNormalization") + skips

    tokenizer = tiny_run.exported.bundle_dir / "tokenizer.json"
    texts = _train_texts(tiny_run, 40)
    before = ModelRunner(fused, tokenizer, max_length=128).margins(texts)
    after = ModelRunner(unfused, tokenizer, max_length=128).margins(texts)
    np.testing.assert_allclose(after, before, atol=1e-5)

    # The runner keeps it so: ORT's session optimiser would fuse the int8 graph's sums
    # back (the bias added next to a dequantized MatMul output matches its pattern).
    import onnxruntime as ort

    from services.inference.runner import DISABLED_OPTIMIZERS

    work = tmp_path / "int8"
    work.mkdir()
    int8 = quantize.quantize_recipe(
        fp32, work, model_dir, RECIPES[DEFAULT_RECIPE], _train_texts(tiny_run)
    )

    def loaded_ops(disabled: list[str]) -> list[str]:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
        ort.InferenceSession(
            str(int8), options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )
        return list(_ops(tmp_path / "loaded.onnx").values())

    assert "SkipLayerNormalization" not in loaded_ops(list(DISABLED_OPTIMIZERS))
    assert "SkipLayerNormalization" in loaded_ops([])

    old = onnx.load(str(fused))
    for opset in old.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 16
    assert unfuse_skip_layer_norm(old) == 0
    assert [n.op_type for n in old.graph.node].count("SkipLayerNormalization") == skips


def test_tanh_gelu_stays_close_to_the_erf_graph_and_is_not_fused_back(  # type: ignore[no-untyped-def]
    tiny_run, tmp_path: Path
) -> None:
    """Every fused erf GELU becomes FastGelu; the graph scores within the approximation's
    reach of the erf one, and ORT's session keeps it as it is."""
    import onnxruntime as ort

    from services.inference.runner import DISABLED_OPTIMIZERS, ModelRunner
    from training.export.gelu import tanh_gelu
    from training.export.quantize import optimize

    fused = optimize(
        tiny_run.exported.fp32_model, tmp_path / "fused.onnx", tiny_run.finetuned.model_dir
    )
    model = onnx.load(str(fused))
    gelus = [n.op_type for n in model.graph.node].count("BiasGelu")
    assert gelus == 2  # one per layer of the tiny encoder
    assert tanh_gelu(model) == gelus
    tanh = tmp_path / "tanh.onnx"
    onnx.save(model, str(tanh))
    assert "BiasGelu" not in _ops(tanh).values()

    tokenizer = tiny_run.exported.bundle_dir / "tokenizer.json"
    texts = _train_texts(tiny_run, 40)
    erf_margins = ModelRunner(fused, tokenizer, max_length=128).margins(texts)
    tanh_margins = ModelRunner(tanh, tokenizer, max_length=128).margins(texts)
    np.testing.assert_allclose(tanh_margins, erf_margins, atol=1e-2)

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "loaded.onnx")
    ort.InferenceSession(
        str(tanh),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(DISABLED_OPTIMIZERS),
    )
    assert list(_ops(tmp_path / "loaded.onnx").values()).count("FastGelu") == gelus
