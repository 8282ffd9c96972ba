"""Score texts with an ONNX model and a ``tokenizers`` tokenizer. No torch.

Used by ``depdetect evaluate``, the parity check and the benchmark. Texts are
normalised with the bundle's settings (as at training), sorted by token length and
padded per batch only to the longest text in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from schemas.bundle import MODEL_FILE, TOKENIZER_FILE, BundleManifest, read_manifest
from schemas.text_normalization import NormalizationSettings, normalize_text


def session(model_path: Path, threads: int = 2) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def softmax_positive(logits: np.ndarray, positive_index: int = 1) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp[:, positive_index] / exp.sum(axis=1)


class OnnxScorer:
    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        *,
        normalization: NormalizationSettings | None = None,
        max_length: int = 256,
        positive_index: int = 1,
        threads: int = 2,
    ) -> None:
        self.session = session(model_path, threads)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The bundle's tokenizer already truncates; this guards hand-made tokenizers too.
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.no_padding()
        self.normalization = normalization or NormalizationSettings()
        self.positive_index = positive_index
        self.pad_id = self._pad_id()

    @classmethod
    def from_bundle(cls, directory: Path, threads: int = 2) -> tuple[OnnxScorer, BundleManifest]:
        manifest = read_manifest(directory)
        scorer = cls(
            directory / MODEL_FILE,
            directory / TOKENIZER_FILE,
            normalization=manifest.normalization,
            max_length=manifest.max_sequence_length,
            positive_index=manifest.positive_index,
            threads=threads,
        )
        return scorer, manifest

    def _pad_id(self) -> int:
        padding = self.tokenizer.padding
        if padding:
            return int(padding["pad_id"])
        for token in ("<pad>", "[PAD]"):
            if (found := self.tokenizer.token_to_id(token)) is not None:
                return found
        return 0

    def encode(self, texts: Sequence[str]) -> list[Encoding]:
        return self.tokenizer.encode_batch([normalize_text(t, self.normalization) for t in texts])

    def run_batch(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for already-tokenised texts, padded to the batch's longest."""
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        (logits,) = self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": mask})
        return np.asarray(logits)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        encodings = self.encode(texts)
        ids = [e.ids for e in encodings]
        order = np.argsort([len(x) for x in ids], kind="stable")
        scores = np.empty(len(ids), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            logits = self.run_batch([ids[i] for i in chunk])
            scores[chunk] = softmax_positive(logits, self.positive_index)
        return scores
