"""Static activation scales: the dynamic int8 graph with each activation's int8 scale fixed
from calibration texts instead of computed per batch.

``quantize_dynamic`` puts a ``DynamicQuantizeLinear`` before every int8 MatMul and
attention: at run time it scans the activation for its minimum and maximum, then
quantizes it (ORT fuses the two into ``DynamicQuantizeMatMul``). Here the range is
measured once, on the real (unpadded) tokens of calibration texts run through the int8
graph itself, and each ``DynamicQuantizeLinear`` becomes a ``QuantizeLinear`` with that
constant scale and zero point: one pass over each activation less. The int8 MatMuls then
become ``MatMulIntegerToFloat`` (the same MLAS kernel that ``DynamicQuantizeMatMul``
runs; ORT does not fuse ``MatMulInteger -> Cast -> Mul`` when the scale is constant), with
the bias ``Add`` after them folded in. Values outside the calibrated range saturate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from training.export.calibration import probe_real_rows
from training.export.gelu import MICROSOFT

log = logging.getLogger(__name__)

_QMAX = 255  # uint8 activations, as DynamicQuantizeLinear makes them


@dataclass(frozen=True)
class ActivationRange:
    low: float
    high: float

    def uint8_parameters(self) -> tuple[np.ndarray, np.ndarray]:
        """Scale and zero point the way ``DynamicQuantizeLinear`` derives them from a range
        (widened to include 0; zero point rounded half to even)."""
        low, high = min(self.low, 0.0), max(self.high, 0.0)
        scale = (high - low) / _QMAX if high > low else 1.0
        zero_point = np.clip(np.rint(-low / scale), 0, _QMAX)
        return np.array(scale, dtype=np.float32), np.array(zero_point, dtype=np.uint8)


def activation_ranges(
    model: onnx.ModelProto, names: Sequence[str], model_dir: Path, texts: Sequence[str]
) -> dict[str, ActivationRange]:
    """Minimum and maximum of each named activation over the real tokens of ``texts``."""
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for batch in probe_real_rows(model, names, model_dir, texts):
        for name, rows in batch.items():
            if rows.size:
                low[name] = min(low.get(name, 0.0), float(rows.min()))
                high[name] = max(high.get(name, 0.0), float(rows.max()))
    return {n: ActivationRange(low.get(n, 0.0), high.get(n, 0.0)) for n in names}


def _only_consumer(
    consumers: dict[str, list[onnx.NodeProto]], name: str, op_type: str
) -> onnx.NodeProto | None:
    found = consumers.get(name, [])
    return found[0] if len(found) == 1 and found[0].op_type == op_type else None


def _int_to_float(
    matmul: onnx.NodeProto,
    consumers: dict[str, list[onnx.NodeProto]],
    producer: dict[str, onnx.NodeProto],
    constants: dict[str, onnx.TensorProto],
) -> tuple[onnx.NodeProto, list[onnx.NodeProto]] | None:
    """``MatMulInteger -> Cast -> Mul(Mul(a_scale, b_scale)) [-> Add(bias)]`` as one
    ``MatMulIntegerToFloat`` and the nodes it replaces; None for any other shape."""
    cast = _only_consumer(consumers, matmul.output[0], "Cast")
    scaled = _only_consumer(consumers, cast.output[0], "Mul") if cast is not None else None
    if cast is None or scaled is None:
        return None
    scales = producer.get(next(i for i in scaled.input if i != cast.output[0]))
    if scales is None or _only_consumer(consumers, scales.output[0], "Mul") is not scaled:
        return None
    a_zero_point = matmul.input[2] if len(matmul.input) > 2 else ""
    a_scale, b_scale = scales.input
    if b_scale not in constants:
        return None
    replaced = [cast, scaled, scales]
    out, bias = scaled.output[0], ""
    add = _only_consumer(consumers, out, "Add")
    other = next((i for i in add.input if i != out), "") if add is not None else ""
    if add is not None and other in constants and len(constants[other].dims) == 1:
        bias, out = other, add.output[0]
        replaced.append(add)
    b_zero_point = matmul.input[3] if len(matmul.input) > 3 else ""
    fused = helper.make_node(
        "MatMulIntegerToFloat",
        [matmul.input[0], matmul.input[1], a_scale, b_scale, a_zero_point, b_zero_point, bias],
        [out],
        f"{matmul.name}_to_float",
        domain=MICROSOFT,
    )
    return fused, replaced


def fix_activation_scales(
    model_path: Path, out_path: Path, model_dir: Path, texts: Sequence[str]
) -> int:
    """The module docstring's rewrite of the dynamic int8 graph at ``model_path``;
    returns how many activations got a fixed scale."""
    model = onnx.load(str(model_path))
    dynamic = [n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear"]
    if not dynamic:
        onnx.save(model, str(out_path))
        return 0
    ranges = activation_ranges(model, [n.input[0] for n in dynamic], model_dir, texts)
    for node in dynamic:
        scale, zero_point = node.output[1:]
        value, zero = ranges[node.input[0]].uint8_parameters()
        model.graph.initializer.extend(
            [numpy_helper.from_array(value, scale), numpy_helper.from_array(zero, zero_point)]
        )
        node.op_type = "QuantizeLinear"
        node.name = f"{node.name}_static"
        del node.output[1:]
        node.input.extend([scale, zero_point])
    constants = {i.name: i for i in model.graph.initializer}
    # One list of the nodes held for the whole rewrite, so that identity (id) is stable.
    graph = list(model.graph.node)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {o: n for n in graph for o in n.output}
    fused: dict[int, onnx.NodeProto] = {}
    gone: set[int] = set()
    for node in graph:
        if node.op_type != "MatMulInteger":
            continue
        found = _int_to_float(node, consumers, producer, constants)
        if found is None:
            log.warning("static scales: %s keeps MatMulInteger (unexpected neighbours)", node.name)
            continue
        fused[id(node)], replaced = found
        gone.update(map(id, replaced))
    nodes = [fused.get(id(n), n) for n in graph if id(n) not in gone]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if fused and not any(o.domain == MICROSOFT for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MICROSOFT, 1))
    used = {i for n in nodes for i in n.input} | {o.name for o in model.graph.output}
    for init in list(model.graph.initializer):
        if init.name not in used:  # the scale products the fused nodes no longer need
            model.graph.initializer.remove(init)
    onnx.save(model, str(out_path))
    log.info("static activation scales: %d; MatMulIntegerToFloat: %d", len(dynamic), len(fused))
    return len(dynamic)
