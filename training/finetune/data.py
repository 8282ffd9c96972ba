"""Tokenised datasets and batches: dynamic padding, length-grouped sampling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler
from transformers import PreTrainedTokenizerBase
from transformers.trainer_pt_utils import LengthGroupedSampler

from schemas.text_normalization import NormalizationSettings, normalize_text


class EncodedTexts(Dataset[dict[str, Any]]):
    """Texts normalised exactly as at serving time, tokenised once, unpadded."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        weights: Sequence[float],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        normalization: NormalizationSettings,
    ) -> None:
        normalized = [normalize_text(t, normalization) for t in texts]
        encoded = tokenizer(normalized, truncation=True, max_length=max_length)
        self.input_ids: list[list[int]] = encoded["input_ids"]
        self.attention_mask: list[list[int]] = encoded["attention_mask"]
        self.labels = list(labels)
        self.weights = list(weights)

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
            "attention_mask": self.attention_mask[index],
            "labels": self.labels[index],
            "weight": self.weights[index],
        }


def pad_batch(input_ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest text of the batch (not to 512): dynamic padding."""
    width = max(len(ids) for ids in input_ids)
    ids = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, tokens in enumerate(input_ids):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        mask[row, : len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class _Collator:
    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.pad_id = int(tokenizer.pad_token_id or 0)

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([row["input_ids"] for row in rows], self.pad_id)
        batch["labels"] = torch.tensor([row["labels"] for row in rows], dtype=torch.long)
        batch["weight"] = torch.tensor([row["weight"] for row in rows], dtype=torch.float32)
        return batch


def loader(
    dataset: EncodedTexts,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    *,
    train: bool,
    group_by_length: bool,
    seed: int,
) -> DataLoader[dict[str, Any]]:
    sampler: Sampler[int]
    if train and group_by_length:
        # Batches of similar length waste little compute on padding; shuffled by mega-batch.
        generator = torch.Generator().manual_seed(seed)
        sampler = LengthGroupedSampler(batch_size, lengths=dataset.lengths, generator=generator)
    elif train:
        sampler = torch.utils.data.RandomSampler(
            dataset, generator=torch.Generator().manual_seed(seed)
        )
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=_Collator(tokenizer)
    )
