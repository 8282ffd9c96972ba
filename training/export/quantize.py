"""ONNX Runtime graph optimisation, then int8 quantization for the CPU.

The default recipe (``fused-outliers-tanh``; measured on run E's fine-tuned
multilingual-e5-small, 2,642 validation texts):

* ORT's transformer fusions first (Attention, BiasGelu; its SkipLayerNorm fusion is
  turned back into Add + LayerNormalization: 3.5x faster at 2 threads, measured);
* word embeddings: int8 with one scale per row (``Gather`` int8 rows, then scale).
  ORT's own embedding quantization is per tensor and also quantizes the LayerNorm
  gamma/beta; per row it is near lossless and the 250k x 384 table shrinks 4x;
* each FFN's few widest intermediate channels (on calibration texts) move into a small
  fp32 side chain (``split_outlier_channels``): in the lower layers a handful of GELU
  outputs reach 10-70 while the rest stay under about 5, and one dynamic int8 scale per
  tensor spent its steps on them; this is where the int8 graph lost its agreement;
* everything else (fused attention, every other MatMul): dynamic int8 with
  per-channel QInt8 weights, the fast VNNI path. Nodes matching ``exclude`` stay fp32;
* the fused erf GELUs become the tanh approximation (``gelu``): a faster kernel.

Other recipes (``training.config.RECIPES``, picked by ``ExportConfig.recipe`` and compared
side by side by ``training/evaluate/recipes.py``) switch these steps on and off: fusion,
per-row embeddings, per-channel weights, outlier channels, SmoothQuant, static
activation scales (``static_activations``), 8-bit weight-only MatMuls (``MatMulNBits``:
fp32 activations, about 3x slower than the int8 kernels here; the previous default kept
the lower layers' FFN outputs so) or fp32 nodes.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoConfig

from schemas.errors import ConfigurationError
from training.config import FFN_OUTPUT_MATMUL, QuantRecipe
from training.export.calibration import probe_real_rows
from training.export.gelu import MICROSOFT, tanh_gelu
from training.export.layer_norm import unfuse_skip_layer_norm
from training.export.static_activations import fix_activation_scales

log = logging.getLogger(__name__)

#: Gather tables with at least this many rows are quantized per row (the vocabulary).
MIN_EMBEDDING_ROWS = 1024
WEIGHT_ONLY_BLOCK = 32


def optimize(fp32_path: Path, out_path: Path, model_dir: Path) -> Path:
    """Fuse attention and GELU with ORT's transformer optimiser (its SkipLayerNorm
    fusion is undone: ``layer_norm``).

    Fused graphs quantize to ORT's int8 attention kernels. The embedding LayerNorm is
    left unfused so the word-embedding ``Gather`` can be quantized per row. If fusion
    fails for an architecture, the plain graph is used: slower, never wrong.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    config = AutoConfig.from_pretrained(model_dir)
    options = FusionOptions("bert")
    options.enable_embed_layer_norm = False
    try:
        optimized = optimize_model(
            str(fp32_path),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            optimization_options=options,
        )
        unfused = unfuse_skip_layer_norm(optimized.model)
        log.info("SkipLayerNormalization back to Add + LayerNormalization: %d", unfused)
        optimized.save_model_to_file(str(out_path))
    except Exception as exc:  # ORT raises many kinds on unknown graphs
        log.warning("ORT transformer optimisation failed (%s); quantizing the plain graph", exc)
        return fp32_path
    return out_path


def _matching(names: Iterable[str], patterns: Sequence[str]) -> list[str]:
    compiled = [re.compile(p) for p in patterns]
    return [n for n in names if any(c.search(n) for c in compiled)]


#: The encoder layer a node or module belongs to: ``/layer.3/`` in ONNX node names,
#: ``.layer.3.`` in PyTorch module names, ``Attention_3`` for ORT's fused attention.
_LAYER_INDEX = re.compile(r"(?:[./]layer\.|^Attention_)(\d+)(?:[./]|$)")


def layer_index(name: str) -> int | None:
    found = _LAYER_INDEX.search(name)
    return int(found.group(1)) if found else None


def in_lower_layers(names: Iterable[str], share: float) -> list[str]:
    """The names whose encoder layer is among the lowest ``share`` of the layers seen in
    ``names`` (at least one layer); names outside any layer are kept."""
    names = list(names)
    layers = [i for i in map(layer_index, names) if i is not None]
    if share >= 1 or not layers:
        return names
    keep = max(1, math.ceil(share * (max(layers) + 1)))
    return [n for n in names if (i := layer_index(n)) is None or i < keep]


def _replace_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> None:
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def int8_rows(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per row: (int8 rows, fp32 scales of shape [V, 1])."""
    scale = np.abs(weights).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    rows = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
    return rows, scale.astype(np.float32)


def quantize_embedding_rows(
    model: onnx.ModelProto, min_rows: int = MIN_EMBEDDING_ROWS, skip: Iterable[str] = ()
) -> list[str]:
    """Gather(fp32 table [V, H], ids) -> Gather(int8 table) * Gather(row scale).

    Symmetric int8 with one scale per row: only the gathered rows are dequantized, so
    the cost per call is a few thousand multiplies. Returns the replaced nodes' names.
    """
    initializers = {i.name: i for i in model.graph.initializer}
    skipped = set(skip)
    nodes: list[onnx.NodeProto] = []
    replaced = []
    for node in model.graph.node:
        wanted = node.op_type == "Gather" and node.name not in skipped
        table = initializers.get(node.input[0]) if wanted else None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if (
            table is None
            or table.data_type != TensorProto.FLOAT
            or len(table.dims) != 2
            or table.dims[0] < min_rows
            or axis != 0
        ):
            nodes.append(node)
            continue
        rows, scale = int8_rows(numpy_helper.to_array(table))
        q_name, s_name = f"{table.name}_int8", f"{table.name}_row_scale"
        model.graph.initializer.remove(table)
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(rows, q_name),
                numpy_helper.from_array(scale, s_name),
            ]
        )
        ids, out = node.input[1], node.output[0]
        nodes += [
            helper.make_node("Gather", [q_name, ids], [f"{out}_int8"], f"{node.name}_int8"),
            helper.make_node("Gather", [s_name, ids], [f"{out}_scale"], f"{node.name}_scale"),
            helper.make_node(
                "Cast", [f"{out}_int8"], [f"{out}_float"], f"{node.name}_cast", to=TensorProto.FLOAT
            ),
            helper.make_node(
                "Mul", [f"{out}_float", f"{out}_scale"], [out], f"{node.name}_dequant"
            ),
        ]
        replaced.append(node.name)
    _replace_nodes(model, nodes)
    return replaced


def quantize_weight_only(
    model: onnx.ModelProto, names: Iterable[str], block_size: int = WEIGHT_ONLY_BLOCK
) -> list[str]:
    """MatMul(x, W fp32 [K, N]) -> MatMulNBits: 8-bit symmetric weights per block of
    ``block_size`` along K, activations and accumulation in fp32."""
    from onnxruntime.capi._pybind_state import quantize_matmul_8bits

    wanted = set(names)
    initializers = {i.name: i for i in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    replaced = []
    for node in model.graph.node:
        weight = initializers.get(node.input[1]) if node.op_type == "MatMul" else None
        if (
            node.name not in wanted
            or weight is None
            or weight.data_type != TensorProto.FLOAT
            or len(weight.dims) != 2
        ):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)
        k, n = w.shape
        blocks = -(-k // block_size)
        padded = np.ascontiguousarray(np.pad(w, ((0, blocks * block_size - k), (0, 0))))
        packed = np.zeros((n, blocks, block_size), dtype=np.uint8)
        scales = np.zeros((n, blocks), dtype=np.float32)
        zero_points = np.zeros((n, blocks), dtype=np.uint8)  # unused when symmetric
        quantize_matmul_8bits(packed, padded, scales, zero_points, block_size, n, k, True)
        q_name, s_name = f"{weight.name}_Q8", f"{weight.name}_scales"
        model.graph.initializer.remove(weight)
        model.graph.initializer.extend(
            [numpy_helper.from_array(packed, q_name), numpy_helper.from_array(scales, s_name)]
        )
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], q_name, s_name],
                list(node.output),
                f"{node.name}_Q8",
                domain=MICROSOFT,
                K=k,
                N=n,
                bits=8,
                block_size=block_size,
            )
        )
        replaced.append(node.name)
    _replace_nodes(model, nodes)
    if replaced and not any(o.domain == MICROSOFT for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MICROSOFT, 1))
    return replaced


def quantize(
    model_path: Path,
    out_path: Path,
    *,
    per_channel: bool,
    embedding_rows: bool = True,
    weight_only: Sequence[str] = (FFN_OUTPUT_MATMUL,),
    weight_only_share: float = 1.0,
    exclude: Sequence[str] = (),
    tanh: bool = False,
) -> Path:
    """The recipe in the module docstring. ``weight_only`` and ``exclude`` are regular
    expressions searched in node names (``weight_only`` only in the lowest
    ``weight_only_share`` of the layers); ``exclude`` wins and leaves a node fp32;
    ``tanh`` turns the fused erf GELUs into their tanh approximation."""
    model = onnx.load(str(model_path))
    if tanh:
        log.info("erf GELU -> FastGelu (tanh): %d", tanh_gelu(model))
    names = [n.name for n in model.graph.node]
    excluded = _matching(names, exclude)
    if embedding_rows:
        done = quantize_embedding_rows(model, skip=excluded)
        log.info("int8 per-row embeddings: %s", done)
    weight_only_names = in_lower_layers(_matching(names, weight_only), weight_only_share)
    done = quantize_weight_only(model, set(weight_only_names) - set(excluded))
    log.info("8-bit weight-only MatMuls: %d", len(done))
    staged = out_path.with_name(f"{out_path.stem}-staged.onnx")
    onnx.save(model, str(staged))
    del model
    # QInt8 weights: the VNNI/AVX2 kernels' fast path; QUInt8 measured half the speed.
    # Only MatMul and fused Attention: ORT's EmbedLayerNormalization/Gather quantization
    # is per tensor (and quantizes LayerNorm gamma/beta), which cost parity.
    quantize_dynamic(
        str(staged),
        str(out_path),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        op_types_to_quantize=["MatMul", "Attention"],
        nodes_to_exclude=excluded,
        # Fused contrib ops (Attention, BiasGelu) carry no ONNX type information.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    staged.unlink()
    return out_path


def channel_amax(
    model: onnx.ModelProto, activations: Iterable[str], model_dir: Path, texts: Sequence[str]
) -> dict[str, np.ndarray]:
    """The largest |value| of each channel (last axis) of each named activation, over the
    real (unpadded) tokens of ``texts`` run through ``model``."""
    amax: dict[str, np.ndarray] = {}
    for batch in probe_real_rows(model, activations, model_dir, texts):
        for name, rows in batch.items():
            seen = np.abs(rows).max(axis=0) if len(rows) else np.zeros(rows.shape[-1])
            amax[name] = np.maximum(amax.get(name, seen), seen)
    return amax


def smooth_matmul_inputs(
    model_path: Path,
    out_path: Path,
    patterns: Sequence[str],
    model_dir: Path,
    texts: Sequence[str],
    alpha: float = 0.5,
) -> list[str]:
    """SmoothQuant on the MatMuls named by ``patterns`` (constant weights only).

    Per input channel j: s_j = amax(x_j)^alpha / amax(W_j)^(1 - alpha), with amax(x_j)
    measured over the real (unpadded) tokens of ``texts``; then x / s feeds W * s, which
    is the same product in exact arithmetic, with the activation outliers moved into the
    (per-channel quantized) weights. Returns the smoothed nodes' names.
    """
    model = onnx.load(str(model_path))
    initializers = {i.name: i for i in model.graph.initializer}
    wanted = set(_matching([n.name for n in model.graph.node], patterns))
    targets = [
        n
        for n in model.graph.node
        if n.op_type == "MatMul"
        and n.name in wanted
        and n.input[1] in initializers
        and len(initializers[n.input[1]].dims) == 2
    ]
    if not targets or not texts:
        onnx.save(model, str(out_path))
        return []
    amax = channel_amax(model, {n.input[0] for n in targets}, model_dir, texts)
    nodes: list[onnx.NodeProto] = []
    smoothed: list[str] = []
    for node in model.graph.node:
        if node not in targets:
            nodes.append(node)
            continue
        weight = initializers[node.input[1]]
        w = numpy_helper.to_array(weight).astype(np.float32)
        x_max = amax[node.input[0]].astype(np.float32)
        w_max = np.abs(w).max(axis=1)
        scale = np.power(np.maximum(x_max, 1e-5), alpha) / np.power(
            np.maximum(w_max, 1e-5), 1 - alpha
        )
        scale = np.clip(scale, 1e-2, 1e2).astype(np.float32)
        scale[(x_max == 0) | (w_max == 0)] = 1.0
        w_name, s_name = f"{weight.name}_smoothed", f"{node.name}_smooth_inv"
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(w * scale[:, None], w_name),
                numpy_helper.from_array((1.0 / scale).astype(np.float32), s_name),
            ]
        )
        scaled = f"{node.input[0]}_smoothed_{len(smoothed)}"
        nodes.append(
            helper.make_node("Mul", [node.input[0], s_name], [scaled], f"{node.name}_smooth")
        )
        node.input[0], node.input[1] = scaled, w_name
        nodes.append(node)
        smoothed.append(node.name)
    used = {i for n in nodes for i in n.input}
    for init in list(model.graph.initializer):
        if init.name not in used:
            model.graph.initializer.remove(init)
    _replace_nodes(model, nodes)
    onnx.save(model, str(out_path))
    return smoothed


#: Suffix of the nodes that carry an FFN's outlier channels in fp32 (never quantized).
OUTLIER_SUFFIX = "_outliers"
#: GELU nodes of ORT's fusions that take the FFN input projection's bias as input 1.
_BIASED_GELU = ("BiasGelu", "FastGelu")


def _ffn_chains(
    model: onnx.ModelProto, initializers: dict[str, onnx.TensorProto]
) -> list[tuple[onnx.NodeProto, onnx.NodeProto, onnx.NodeProto]]:
    """(input MatMul, biased GELU, output MatMul) of each fused FFN whose weights are
    constant and whose intermediate tensors feed nothing else."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {o: n for n in model.graph.node for o in n.output}
    outputs = {o.name for o in model.graph.output}
    chains = []
    for second in model.graph.node:
        if second.op_type != "MatMul" or not re.search(FFN_OUTPUT_MATMUL, second.name):
            continue
        gelu = producer.get(second.input[0])
        first = producer.get(gelu.input[0]) if gelu is not None else None
        if (
            gelu is None
            or first is None
            or gelu.op_type not in _BIASED_GELU
            or len(gelu.input) != 2
            or first.op_type != "MatMul"
            or not all(n.input[1] in initializers for n in (first, second))
            or gelu.input[1] not in initializers
            or any(
                len(consumers[t]) != 1 or t in outputs for t in (first.output[0], gelu.output[0])
            )
            or any(len(consumers[n.input[1]]) != 1 for n in (first, gelu, second))
        ):
            log.info("outlier split: %s is not MatMul -> biased GELU -> MatMul", second.name)
            continue
        chains.append((first, gelu, second))
    return chains


def split_outlier_channels(
    model_path: Path, out_path: Path, model_dir: Path, texts: Sequence[str], channels: int
) -> list[str]:
    """Carry each fused FFN's ``channels`` widest intermediate channels in fp32.

    A few GELU outputs of an FFN reach 10-70 while the rest stay under about 5 (measured
    on the calibration texts); one dynamic int8 scale per tensor spends its 256 steps on
    them. Here the input projection's columns, the GELU bias and the output projection's
    rows of those channels move into a small fp32 chain (K = ``channels``) whose result is
    added to the rest's, which is then quantized like any MatMul: the same function in
    exact arithmetic (as in LLM.int8()'s decomposition, but with the channels fixed at
    export, so no activation is gathered at run time). Returns the split FFNs' output
    MatMul names.
    """
    model = onnx.load(str(model_path))
    initializers = {i.name: i for i in model.graph.initializer}
    chains = _ffn_chains(model, initializers)
    if not chains or channels < 1:
        onnx.save(model, str(out_path))
        return []
    amax = channel_amax(model, (second.input[0] for _, _, second in chains), model_dir, texts)
    at = {chain[2].name: chain for chain in chains}
    nodes: list[onnx.NodeProto] = []
    split: list[str] = []
    for node in model.graph.node:
        chain = at.get(node.name)
        if chain is None:
            nodes.append(node)
            continue
        first, gelu, second = chain
        wide = np.argsort(amax[second.input[0]])[::-1]
        outliers, rest = np.sort(wide[:channels]), np.sort(wide[channels:])
        # W1's columns, b1's entries and W2's rows of the channels: (owner, channel axis).
        side: list[str] = []
        for owner, axis in ((first, 1), (gelu, 0), (second, 0)):
            old = owner.input[1]
            value = numpy_helper.to_array(initializers[old])
            model.graph.initializer.remove(initializers[old])
            for name, keep in ((f"{old}_rest", rest), (f"{old}{OUTLIER_SUFFIX}", outliers)):
                part = np.ascontiguousarray(np.take(value, keep, axis=axis))
                model.graph.initializer.append(numpy_helper.from_array(part, name))
            owner.input[1] = f"{old}_rest"
            side.append(f"{old}{OUTLIER_SUFFIX}")
        w1, b1, w2 = side
        out = second.output[0]
        tag = f"{second.name}{OUTLIER_SUFFIX}"
        nodes += [
            helper.make_node(
                "MatMul",
                [first.input[0], w1],
                [f"{tag}_in"],
                f"{first.name}{OUTLIER_SUFFIX}",
            ),
            helper.make_node(
                gelu.op_type,
                [f"{tag}_in", b1],
                [f"{tag}_gelu"],
                f"{gelu.name}{OUTLIER_SUFFIX}",
                domain=gelu.domain,
            ),
            helper.make_node("MatMul", [f"{tag}_gelu", w2], [f"{tag}_out"], tag),
        ]
        second.output[0] = f"{out}_rest"
        nodes += [
            second,
            helper.make_node("Add", [f"{out}_rest", f"{tag}_out"], [out], f"{tag}_add"),
        ]
        split.append(second.name)
    _replace_nodes(model, nodes)
    onnx.save(model, str(out_path))
    return split


def quantize_recipe(
    fp32_path: Path,
    work: Path,
    model_dir: Path,
    recipe: QuantRecipe,
    calibration_texts: Sequence[str] = (),
    fused: Path | None = None,
) -> Path:
    """fp32 graph -> ``work/model-int8.onnx`` by ``recipe``: fused first if it says so
    (or ``fused``, the same graph fused already), smoothed on ``calibration_texts`` if it
    names nodes to smooth."""
    source = fp32_path
    if recipe.fuse:
        source = fused or optimize(fp32_path, work / "model-optimized.onnx", model_dir)
    if recipe.smooth_nodes:
        if not calibration_texts:
            raise ConfigurationError("this recipe smooths activations: give calibration texts")
        staged = work / "model-smoothed.onnx"
        done = smooth_matmul_inputs(
            source, staged, recipe.smooth_nodes, model_dir, calibration_texts, recipe.smooth_alpha
        )
        log.info("SmoothQuant on %d MatMuls", len(done))
        source = staged
    exclude = recipe.exclude_nodes
    if recipe.outlier_channels:
        if not calibration_texts:
            raise ConfigurationError("this recipe splits outlier channels: give calibration texts")
        staged = work / "model-split.onnx"
        done = split_outlier_channels(
            source, staged, model_dir, calibration_texts, recipe.outlier_channels
        )
        log.info("%d FFNs carry %d channels in fp32", len(done), recipe.outlier_channels)
        source = staged
        exclude = (*exclude, re.escape(OUTLIER_SUFFIX) + "$")
    out = quantize(
        source,
        work / "model-int8.onnx",
        per_channel=recipe.per_channel,
        embedding_rows=recipe.int8_embedding_rows,
        weight_only=recipe.weight_only_nodes,
        weight_only_share=recipe.weight_only_lower_share,
        exclude=exclude,
        tanh=recipe.tanh_gelu,
    )
    if recipe.static_activations:
        if not calibration_texts:
            raise ConfigurationError("this recipe fixes activation scales: give calibration texts")
        fix_activation_scales(out, out, model_dir, calibration_texts)
    return out
