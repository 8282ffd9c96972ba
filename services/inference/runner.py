"""The model runner: an ONNX graph and a ``tokenizers`` tokenizer scored with onnxruntime.
No torch.

The one scorer of the project: the service, ``depdetect evaluate``, the export's parity
check, the comparison report and the benchmarks all use it, so what is measured is
what is served. Texts are normalised as at training time, tokenised without padding,
sorted by length into micro-batches and padded only to the longest text of each
micro-batch (dynamic padding), which is several times faster than padding to 512; a
micro-batch is cut wherever its padding would cost more than another call
(``batching``).

Texts longer than the bundle's max length are scored by overlapping windows when the
manifest turns chunking on (the window margins are pooled, then calibrated); else
they are truncated. Both are decided by ``bundle.json`` alone, so evaluation and the
service cannot differ.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from schemas.bundle import (
    MODEL_FILE,
    TOKENIZER_FILE,
    BundleManifest,
    Calibration,
    ChunkingSettings,
    read_manifest,
)
from schemas.errors import BundleError
from schemas.text import NormalizationSettings, normalize_text
from services.inference.batching import CPU_CALL_OVERHEAD_TOKENS, measure_overhead, plan

#: ORT graph transformers not to run at load. The export undoes ORT's SkipLayerNorm
#: fusion (its CPU kernel is several times slower than Add + LayerNormalization:
#: ``training/export/layer_norm.py``); the session would fuse it again.
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


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


def windows(
    ids: Sequence[int], special: Sequence[int], length: int, chunking: ChunkingSettings
) -> list[list[int]]:
    """Overlapping windows of at most ``length`` ids, each framed by the text's own
    leading and trailing special tokens (``special`` is the tokenizer's mask).

    The first window is exactly what truncation to ``length`` gives, so a short text
    (one window) scores the same with chunking on or off.
    """
    head = 0
    while head < len(ids) and special[head]:
        head += 1
    tail = len(ids)
    while tail > head and special[tail - 1]:
        tail -= 1
    prefix, body, suffix = list(ids[:head]), list(ids[head:tail]), list(ids[tail:])
    room = length - len(prefix) - len(suffix)
    if len(ids) <= length or room <= chunking.stride:
        return [list(ids[: length - len(suffix)]) + suffix if len(ids) > length else list(ids)]
    step = room - chunking.stride
    out = []
    for start in range(0, len(body), step):
        out.append(prefix + body[start : start + room] + suffix)
        if start + room >= len(body) or len(out) == chunking.max_chunks:
            break
    return out


def pool(margins: np.ndarray, chunking: ChunkingSettings) -> int | float:
    """Index of the deciding window (``max``) or the pooled margin (``mean_top_k``)."""
    if chunking.pooling == "max" or len(margins) == 1:
        return int(np.argmax(margins))
    top = np.sort(margins)[-chunking.top_k :]
    return float(top.mean())


def calibrated(margins: np.ndarray, calibration: Calibration) -> np.ndarray:
    """sigmoid(scale * margin + bias), stable for large margins of either sign."""
    z = calibration.scale * np.asarray(margins, dtype=np.float64) + calibration.bias
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a taskset, a container's
    cpuset), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity (macOS)
        return os.cpu_count() or 1


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
        intra_op_threads: int | None = None,
        inter_op_threads: int = 1,
        spin_wait: bool = False,
        manifest: BundleManifest | None = None,
        chunking: ChunkingSettings | None = None,
        calibration: Calibration | None = None,
        call_overhead_tokens: float | None = None,
    ) -> None:
        self._manifest = manifest
        self.max_length = max_length
        self.chunking = chunking or ChunkingSettings()
        self.calibration = calibration or Calibration()
        self.normalization = normalization or NormalizationSettings()
        self.positive_index = positive_index
        self.output_name = output_name
        self.micro_batch_size = micro_batch_size
        options = ort.SessionOptions()
        # Explicit threads: several workers on one host must not each grab every core.
        options.intra_op_num_threads = intra_op_threads or usable_cores()
        options.inter_op_num_threads = inter_op_threads
        # ORT's workers busy-wait between operators by default: fast on idle cores, but on
        # cores shared with the broker, the database and the event loop that is stolen time.
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if spin_wait else "0"
        )
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(model_path),
                options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=list(DISABLED_OPTIMIZERS),
            )
            self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise BundleError(f"cannot load model {model_path}: {exc}") from exc
        # The pad id comes from the tokenizer's own padding settings, before they are
        # switched off here (padding is done per micro-batch below).
        padding = self.tokenizer.padding
        self.pad_id = int(padding["pad_id"]) if padding else self._pad_token_id()
        self.tokenizer.no_padding()
        if self.chunking.enabled:
            self.tokenizer.no_truncation()  # windows are cut in ``windows`` instead
        else:
            self.tokenizer.enable_truncation(max_length)
        self._input_names = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise BundleError(f"{model_path} lacks inputs {sorted(missing)}")
        #: What one more onnxruntime call costs, in padded positions: how micro-batches
        #: are cut (see ``batching``).
        self.call_overhead_tokens = (
            CPU_CALL_OVERHEAD_TOKENS if call_overhead_tokens is None else call_overhead_tokens
        )

    @classmethod
    def from_bundle(
        cls,
        directory: Path | str,
        *,
        micro_batch_size: int = 32,
        intra_op_threads: int | None = None,
        inter_op_threads: int = 1,
        spin_wait: bool = False,
        chunking: ChunkingSettings | Literal["manifest"] | None = "manifest",
        calibration: Calibration | Literal["manifest"] | None = "manifest",
        call_overhead_tokens: float | None = None,
    ) -> ModelRunner:
        """Validate a bundle (refused with ``BundleError``) and load it.

        ``chunking`` and ``calibration`` default to the manifest's; training tools override
        them (None: truncate / raw scores) to measure or fit what the bundle ships."""
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
            spin_wait=spin_wait,
            manifest=manifest,
            chunking=manifest.chunking if chunking == "manifest" else chunking,
            calibration=manifest.calibration if calibration == "manifest" else calibration,
            call_overhead_tokens=call_overhead_tokens,
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

    def margins(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Pooled, uncalibrated logit margins per text (what calibration is fit on)."""
        return self._pooled(self.encode(texts), batch_size or self.micro_batch_size)[0]

    def score(self, texts: Sequence[str]) -> list[Scored]:
        if not texts:
            return []
        encodings = self.encode(texts)
        scores = self._scores(encodings, self.micro_batch_size)
        return [Scored(float(s), len(e.ids)) for s, e in zip(scores, encodings, strict=True)]

    def _windows(self, encodings: Sequence[Encoding]) -> list[list[list[int]]]:
        if not self.chunking.enabled:
            return [[e.ids] for e in encodings]
        return [
            windows(e.ids, e.special_tokens_mask, self.max_length, self.chunking) for e in encodings
        ]

    def _logits(self, ids: list[list[int]], batch_size: int) -> np.ndarray:
        """Logits per id list; runs of at most ``batch_size``, cut where padding would cost
        more than another call."""
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        logits = np.empty((len(ids), 2), dtype=np.float32)
        lengths = [len(ids[i]) for i in order]
        for group in plan(lengths, batch_size, self.call_overhead_tokens):
            chunk = [order[i] for i in group]
            logits[chunk] = self.run_batch([ids[i] for i in chunk])
        return logits

    def _pooled(
        self, encodings: Sequence[Encoding], batch_size: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(pooled margin, plain softmax of the deciding window or nan) per text."""
        per_text = self._windows(encodings)
        flat = [w for text in per_text for w in text]
        logits = self._logits(flat, batch_size)
        negative = 1 - self.positive_index
        margin = logits[:, self.positive_index] - logits[:, negative]
        plain = softmax_positive(logits, self.positive_index) if len(flat) else np.empty(0)
        pooled = np.empty(len(per_text), dtype=np.float64)
        softmax = np.full(len(per_text), np.nan)
        start = 0
        for i, text in enumerate(per_text):
            window = slice(start, start + len(text))
            start += len(text)
            picked = pool(margin[window], self.chunking)
            if isinstance(picked, int):
                pooled[i] = margin[window][picked]
                softmax[i] = plain[window][picked]
            else:
                pooled[i] = picked
        return pooled, softmax

    def _scores(self, encodings: Sequence[Encoding], batch_size: int) -> np.ndarray:
        margins, softmax = self._pooled(encodings, batch_size)
        if self.calibration.method == "none" and not np.isnan(softmax).any():
            # The deciding window's own float32 softmax: exactly what PyTorch gives.
            return softmax.astype(np.float64)
        return calibrated(margins, self.calibration)

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

    def measure_call_overhead(self) -> float:
        """What one more call costs on this machine, in padded positions (timed now)."""
        return measure_overhead(self.run_padded, self.pad_id)

    def warm_up(self) -> float:
        started = time.perf_counter()
        self.score(["warm up"])
        return time.perf_counter() - started
