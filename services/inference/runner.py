"""The model runner: a model bundle scored with onnxruntime. No torch.

Texts are normalised as at training time, tokenised without padding, sorted by
length into micro-batches and padded only to the longest text of each micro-batch
(dynamic padding), which is several times faster than padding everything to 512.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from schemas.bundle import MODEL_FILE, TOKENIZER_FILE, BundleManifest, read_manifest
from schemas.errors import BundleError
from schemas.text_normalization import normalize_text


@dataclass(frozen=True)
class Scored:
    score: float
    """P(depression indicators)."""
    tokens: int


class ModelRunner:
    """Loads a bundle once; ``score`` is thread-compatible but meant for one event loop."""

    def __init__(
        self,
        bundle_dir: Path | str,
        *,
        micro_batch_size: int = 32,
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
    ) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest: BundleManifest = read_manifest(self.bundle_dir)
        self.micro_batch_size = micro_batch_size
        options = ort.SessionOptions()
        # Explicit threads: several workers on one host must not each grab every core.
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.bundle_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = Tokenizer.from_file(str(self.bundle_dir / TOKENIZER_FILE))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BundleError(f"cannot load model bundle {self.bundle_dir}: {exc}") from exc
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.manifest.max_sequence_length)
        self._input_names = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise BundleError(f"model.onnx lacks inputs {sorted(missing)}")
        self._pad_id = (
            self.tokenizer.token_to_id("<pad>") or self.tokenizer.token_to_id("[PAD]") or 0
        )

    @property
    def model_version(self) -> str:
        return self.manifest.model_version

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    def score(self, texts: list[str]) -> list[Scored]:
        if not texts:
            return []
        # A text of only links/mentions/emoji normalises to nothing: score the raw text then.
        normalised = [normalize_text(t, self.manifest.normalization) or t.strip() for t in texts]
        encodings = self.tokenizer.encode_batch(normalised)
        ids = [e.ids for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        scores = np.empty(len(ids), dtype=np.float64)
        for start in range(0, len(order), self.micro_batch_size):
            chunk = order[start : start + self.micro_batch_size]
            scores[chunk] = self._run([ids[i] for i in chunk])
        return [Scored(float(s), len(i)) for s, i in zip(scores, ids, strict=True)]

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        width = max(1, max(len(x) for x in batch))
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            # At least one attended position, so that pooling never divides by zero.
            mask[row, : max(1, len(seq))] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (logits,) = self.session.run([self.manifest.output_name], feeds)
        logits = logits.astype(np.float64)
        # Softmax over two classes, stable.
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        return probs[:, self.manifest.positive_index]

    def warm_up(self) -> float:
        started = time.perf_counter()
        self.score(["warm up"])
        return time.perf_counter() - started
