"""ORT's fused ``SkipLayerNormalization`` back into ``Add`` + ``LayerNormalization``.

The transformer optimiser fuses each residual sum and the LayerNorm after it into one
contrib op. On this CPU (onnxruntime 1.32, hidden size 384, 32 texts x 40 tokens, 2
threads) that kernel takes 1.46 ms where the same sums and the standard
``LayerNormalization`` take 0.42 ms (``benchmarks/bench_layer_norm.py``); in the int8
graphs, whose MatMuls are fast, it was a fifth of the run. The rewrite is the same
function: the fp32 graph scores within 1e-5 of the fused one. onnxruntime's session
would fuse the int8 graph's sums back at load; the runner turns that transformer off
(``services.inference.runner.DISABLED_OPTIMIZERS``).
"""

from __future__ import annotations

import logging

import onnx
from onnx import helper

log = logging.getLogger(__name__)

SKIP_LAYER_NORM = "SkipLayerNormalization"
#: The standard op exists from this ONNX opset on.
LAYER_NORM_OPSET = 17


def _opset(model: onnx.ModelProto) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def unfuse_skip_layer_norm(model: onnx.ModelProto) -> int:
    """Replace every ``SkipLayerNormalization`` in ``model`` (in place) by the residual
    sum (plus its bias, if fused in) and ``LayerNormalization``; returns how many.

    The sum keeps the fused node's optional fourth output name (input + skip + bias),
    which later fusions feed into the next residual. Nodes that also output their mean
    or inverse deviation are left fused (nothing here makes them)."""
    if _opset(model) < LAYER_NORM_OPSET:
        log.info("opset %d has no LayerNormalization: SkipLayerNorm stays fused", _opset(model))
        return 0
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in model.graph.node:
        outputs = [*node.output, "", "", ""][:4]
        if node.op_type != SKIP_LAYER_NORM or outputs[1] or outputs[2]:
            nodes.append(node)
            continue
        count += 1
        inputs = [*node.input, "", ""][:5]
        x, skip, gamma, beta, bias = inputs
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        total = outputs[3] or f"{node.name}_sum"
        if bias:
            # The bias first, next to the projection that made ``x``: in the int8 graph ORT
            # then fuses it into that MatMul's kernel (one pass over the tensor less).
            nodes.append(
                helper.make_node("Add", [x, bias], [f"{node.name}_biased"], f"{node.name}_bias")
            )
            nodes.append(
                helper.make_node("Add", [f"{node.name}_biased", skip], [total], f"{node.name}_add")
            )
        else:
            nodes.append(helper.make_node("Add", [x, skip], [total], f"{node.name}_add"))
        nodes.append(
            helper.make_node(
                "LayerNormalization",
                [total, gamma, *([beta] if beta else [])],
                [outputs[0]],
                f"{node.name}_norm",
                axis=-1,
                epsilon=epsilon,
            )
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return count
