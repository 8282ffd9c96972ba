"""The one PyTorch scorer: fine-tuning's final metrics, export's parity reference and
the PyTorch column of ``train compare`` all call :func:`torch_scores`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from schemas.text import NormalizationSettings
from training.finetune.data import encode_texts, pad_batch


@torch.no_grad()
def torch_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int,
    normalization: NormalizationSettings,
    batch_size: int = 64,
) -> np.ndarray:
    """P(label 1) per text, in input order, on the model's device.

    Texts go through the training tokenisation (:func:`encode_texts`); batches are
    length-sorted to pad little; the softmax runs in float32 as the ONNX runner's does.
    """
    model.eval()
    device = next(model.parameters()).device
    input_ids = encode_texts(texts, tokenizer, max_length, normalization)
    order = np.argsort([len(ids) for ids in input_ids], kind="stable")
    scores = np.empty(len(input_ids), dtype=np.float64)
    pad_id = int(tokenizer.pad_token_id or 0)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = pad_batch([input_ids[i] for i in chunk], pad_id)
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).logits
        scores[chunk] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
    return scores
