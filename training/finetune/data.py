"""Tokenised datasets and batches: texts normalised as at serving time, dynamic padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from schemas.bundle import ChunkingSettings
from schemas.text import NormalizationSettings, normalize_text


def encode_texts(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    normalization: NormalizationSettings,
) -> list[list[int]]:
    """Token ids, unpadded: the training side of the train/serve token contract."""
    normalized = [normalize_text(t, normalization) for t in texts]
    return list(tokenizer(normalized, truncation=True, max_length=max_length)["input_ids"])


def later_windows(
    texts: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    normalization: NormalizationSettings,
    chunking: ChunkingSettings,
) -> list[list[int]]:
    """Every window after the first of each text longer than ``max_length`` tokens, cut
    as the service's chunked scoring cuts it (the first window is what
    :func:`encode_texts` gives): what a student must learn to score like its teacher."""
    from services.inference.runner import windows

    normalized = [normalize_text(t, normalization) for t in texts]
    encoded = tokenizer(normalized, truncation=False, return_special_tokens_mask=True)
    out: list[list[int]] = []
    for ids, special in zip(encoded["input_ids"], encoded["special_tokens_mask"], strict=True):
        if len(ids) > max_length:
            out += windows(ids, special, max_length, chunking)[1:]
    return out


class EncodedTexts(Dataset[dict[str, Any]]):
    """Texts tokenised once, unpadded, each with its label and loss weight."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        weights: Sequence[float],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        normalization: NormalizationSettings,
    ) -> None:
        self.input_ids = encode_texts(texts, tokenizer, max_length, normalization)
        self.labels = [int(label) for label in labels]
        self.weights = [float(w) for w in weights]

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        normalization: NormalizationSettings,
    ) -> EncodedTexts:
        weights = frame["weight"] if "weight" in frame else np.ones(len(frame))
        return cls(
            frame["text"].tolist(),
            frame["label"].astype(int).tolist(),
            [float(w) for w in weights],
            tokenizer,
            max_length,
            normalization,
        )

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids[index],
            "labels": self.labels[index],
            "weight": self.weights[index],
        }


def pad_batch(input_ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest text of the batch (not to 512): dynamic padding."""
    width = max(1, max(len(ids) for ids in input_ids))
    ids = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, tokens in enumerate(input_ids):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def length_batches(lengths: Sequence[int], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of similar length (little padding), shuffled in order too."""
    order = rng.permutation(len(lengths))
    pool = size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        block = sorted(order[start : start + pool], key=lambda i: lengths[i])
        batches += [block[i : i + size] for i in range(0, len(block), size)]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


@torch.no_grad()
def logits_of(
    model: PreTrainedModel, input_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int
) -> torch.Tensor:
    """The model's logits per text, in input order (length-sorted batches)."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(ids) for ids in input_ids], kind="stable")
    out = torch.empty((len(input_ids), model.config.num_labels), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = pad_batch([input_ids[i] for i in chunk], pad_id)
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        out[torch.as_tensor(chunk)] = logits.float().cpu()
    return out


class WeightedCollator:
    """Rows -> padded tensors plus ``labels`` and the per-row loss ``weight``."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.pad_id = int(tokenizer.pad_token_id or 0)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([row["input_ids"] for row in rows], self.pad_id)
        batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.long)
        batch["weight"] = torch.tensor([row["weight"] for row in rows], dtype=torch.float32)
        return batch
