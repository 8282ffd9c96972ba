"""The model runner: an ONNX graph and a ``tokenizers`` tokenizer scored with onnxruntime.
No torch.

The one scorer of the project: the service, ``depdetect evaluate``, the export's parity
check, the comparison report and the benchmarks all use it, so what is measured is
what is served. Texts are normalised as at training time, tokenised without padding,
sorted by length into micro-batches and padded only to the longest text of each
micro-batch (dynamic padding), which is several times faster than padding to 512.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from schemas.bundle import MODEL_FILE, TOKENIZER_FILE, BundleManifest, read_manifest
from schemas.errors import BundleError
from schemas.text import NormalizationSettings, normalize_text


@dataclass(frozen=True)
class Scored:
    score: float
    """P(depression indicators)."""
    tokens: int


def softmax_positive(logits: np.ndarray, positive_index: int = 1) -> np.ndarray:
    """P(class ``positive_index``) from two-class logits, numerically stable.

    Computed in the logits' own precision (float32), as PyTorch does for the reference
    scores: in float64 a near-saturated model's tied scores split differently, and
    ranking metrics (ROC-AUC) stop matching PyTorch's on small splits."""
    logits = np.asarray(logits)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(exp[:, positive_index] / exp.sum(axis=1))


class ModelRunner:
    """Loads a graph once; ``score`` is thread-compatible but meant for one event loop.

    Build it from a bundle with :meth:`from_bundle` (the service, evaluation), or from
    a bare graph and tokenizer (export's parity check on the fp32 and int8 graphs).
    """

    def __init__(
        self,
        model_path: Path | str,
        tokenizer_path: Path | str,
        *,
        normalization: NormalizationSettings | None = None,
        max_length: int = 256,
        positive_index: int = 1,
        output_name: str = "logits",
        micro_batch_size: int = 32,
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
        manifest: BundleManifest | None = None,
    ) -> None:
        self._manifest = manifest
        self.normalization = normalization or NormalizationSettings()
        self.positive_index = positive_index
        self.output_name = output_name
        self.micro_batch_size = micro_batch_size
        options = ort.SessionOptions()
        # Explicit threads: several workers on one host must not each grab every core.
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BundleError(f"cannot load model {model_path}: {exc}") from exc
        # The pad id comes from the tokenizer's own padding settings, before they are
        # switched off here (padding is done per micro-batch below).
        padding = self.tokenizer.padding
        self.pad_id = int(padding["pad_id"]) if padding else self._pad_token_id()
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length)
        self._input_names = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise BundleError(f"{model_path} lacks inputs {sorted(missing)}")

    @classmethod
    def from_bundle(
        cls,
        directory: Path | str,
        *,
        micro_batch_size: int = 32,
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
    ) -> ModelRunner:
        """Validate a bundle (refused with ``BundleError``) and load it."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        return cls(
            directory / MODEL_FILE,
            directory / TOKENIZER_FILE,
            normalization=manifest.normalization,
            max_length=manifest.max_sequence_length,
            positive_index=manifest.positive_index,
            output_name=manifest.output_name,
            micro_batch_size=micro_batch_size,
            intra_op_threads=intra_op_threads,
            inter_op_threads=inter_op_threads,
            manifest=manifest,
        )

    @property
    def manifest(self) -> BundleManifest:
        if self._manifest is None:
            raise BundleError("this runner was built from a bare graph, not a bundle")
        return self._manifest

    @property
    def model_version(self) -> str:
        return self.manifest.model_version

    @property
    def threshold(self) -> float:
        return self.manifest.threshold

    def _pad_token_id(self) -> int:
        for token in ("<pad>", "[PAD]"):
            if (found := self.tokenizer.token_to_id(token)) is not None:
                return found
        return 0

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        # Exactly the training-time normalisation, even when it leaves nothing (a text of
        # only links or mentions): anything else would score text the model never saw.
        return self.tokenizer.encode_batch([normalize_text(t, self.normalization) for t in texts])

    def predict_proba(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """P(indicators) for each text, in input order."""
        return self._scores(self.encode(texts), batch_size or self.micro_batch_size)

    def score(self, texts: Sequence[str]) -> list[Scored]:
        if not texts:
            return []
        encodings = self.encode(texts)
        scores = self._scores(encodings, self.micro_batch_size)
        return [Scored(float(s), len(e.ids)) for s, e in zip(scores, encodings, strict=True)]

    def _scores(self, encodings: Sequence[Encoding], batch_size: int) -> np.ndarray:
        ids = [e.ids for e in encodings]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        scores = np.empty(len(ids), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            scores[chunk] = softmax_positive(
                self.run_batch([ids[i] for i in chunk]), self.positive_index
            )
        return scores

    def run_batch(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for already-tokenised texts, padded to the batch's longest."""
        width = max(1, max(len(x) for x in batch))
        input_ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            # At least one attended position, so that pooling never divides by zero.
            mask[row, : max(1, len(seq))] = 1
        return self.run_padded(input_ids, mask)

    def run_padded(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Logits for ready-made input tensors (benchmarks pad to 512 through here)."""
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (logits,) = self.session.run([self.output_name], feeds)
        return np.asarray(logits)

    def warm_up(self) -> float:
        started = time.perf_counter()
        self.score(["warm up"])
        return time.perf_counter() - started
