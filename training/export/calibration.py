"""Calibration texts through an ONNX graph: what the export's calibrated steps (outlier
channels, SmoothQuant, static activation scales) measure activations with."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

#: Training texts that calibrate the export's measured steps.
CALIBRATION_TEXTS = 256
#: Calibration texts are cut to this many tokens.
CALIBRATION_MAX_LENGTH = 128


def calibration_feeds(
    model_dir: Path, texts: Sequence[str], inputs: set[str], batch_size: int = 32
) -> list[dict[str, np.ndarray]]:
    from training.bundle_builder import bundle_tokenizer

    tokenizer = bundle_tokenizer(model_dir, CALIBRATION_MAX_LENGTH)
    feeds = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer.encode_batch(list(texts[start : start + batch_size]))
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.array([e.attention_mask for e in encoded])}
        feed["attention_mask"] = feed["attention_mask"].astype(np.int64)
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        feeds.append(feed)
    return feeds


def probe_real_rows(
    model: onnx.ModelProto, activations: Iterable[str], model_dir: Path, texts: Sequence[str]
) -> Iterator[dict[str, np.ndarray]]:
    """Per batch of ``texts`` run through ``model``: each named activation as rows of its
    last axis, only the real (unpadded) tokens' rows where it has a token axis."""
    import onnxruntime as ort

    names = sorted(set(activations))
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for name in names:
        if name not in known:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    del probe
    inputs = {i.name for i in session.get_inputs()}
    for feed in calibration_feeds(model_dir, texts, inputs):
        mask = feed["attention_mask"]
        real = mask.reshape(-1).astype(bool)
        batch = {}
        for name, value in zip(names, session.run(names, feed), strict=True):
            rows = value.reshape(-1, value.shape[-1])
            tokens = value.ndim > 2 and value.shape[:2] == mask.shape
            batch[name] = rows[real] if tokens else rows
        yield batch
