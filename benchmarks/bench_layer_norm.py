"""onnxruntime's fused SkipLayerNormalization against Add + LayerNormalization (not a test).

Why the export undoes ORT's SkipLayerNorm fusion (``training/export/layer_norm.py``):
each op alone, on a [batch, tokens, hidden] float tensor, in interleaved rounds (medians
reported), at each thread count. Prints ms per call and the ratio.

    .venv/bin/python benchmarks/bench_layer_norm.py [--hidden 384,768] [--batch 32] \
        [--tokens 40] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.export.layer_norm import unfuse_skip_layer_norm


def graph(kind: str, hidden: int) -> bytes:
    """One residual sum + LayerNorm, fused (``skip``) or as the export's rewrite leaves it."""
    shape = [None, None, hidden]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
        helper.make_tensor_value_info("skip", TensorProto.FLOAT, shape),
    ]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(1, 0.1, hidden).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.normal(0, 0.1, hidden).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.normal(0, 0.1, hidden).astype(np.float32), "bias"),
    ]
    fused = helper.make_node(
        "SkipLayerNormalization",
        ["x", "skip", "gamma", "beta", "bias"],
        ["y"],
        "skip_layer_norm",
        domain="com.microsoft",
        epsilon=1e-12,
    )
    model = helper.make_model(
        helper.make_graph([fused], kind, inputs, [output], weights),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    if kind == "plain":
        unfuse_skip_layer_norm(model)  # the very rewrite the export applies
    onnx.checker.check_model(model)
    return model.SerializeToString()


def session(kind: str, hidden: int, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # As built: nothing fused or unfused by the session itself.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(graph(kind, hidden), options, providers=["CPUExecutionProvider"])


def ms_per_call(sess: ort.InferenceSession, feed: dict[str, np.ndarray], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        sess.run(None, feed)
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="384,768", help="hidden sizes, comma-separated")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--calls", type=int, default=200, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}; [{args.batch}, {args.tokens}, hidden] float32")
    print(f"{'hidden':>6} {'threads':>7} {'SkipLN ms':>10} {'Add+LN ms':>10} {'ratio':>6}")
    rng = np.random.default_rng(1)
    for hidden in (int(h) for h in args.hidden.split(",")):
        shape = (args.batch, args.tokens, hidden)
        feed = {
            "x": rng.standard_normal(shape, dtype=np.float32),
            "skip": rng.standard_normal(shape, dtype=np.float32),
        }
        for threads in (int(t) for t in args.threads.split(",")):
            sessions = {kind: session(kind, hidden, threads) for kind in ("skip", "plain")}
            outputs = {kind: s.run(None, feed)[0] for kind, s in sessions.items()}
            gap = float(np.abs(outputs["skip"] - outputs["plain"]).max())
            if gap > 1e-4:
                raise SystemExit(f"the two graphs disagree by {gap}: not the same function")
            times: dict[str, list[float]] = {kind: [] for kind in sessions}
            for _ in range(args.rounds):
                for kind, s in sessions.items():
                    ms_per_call(s, feed, 10)  # warm
                    times[kind].append(ms_per_call(s, feed, args.calls))
            skip, plain = (statistics.median(times[k]) for k in ("skip", "plain"))
            print(f"{hidden:>6} {threads:>7} {skip:>10.3f} {plain:>10.3f} {skip / plain:>6.1f}")


if __name__ == "__main__":
    main()
