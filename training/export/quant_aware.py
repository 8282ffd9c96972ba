"""Quantization-aware tuning: fine-tuned weights that keep their labels under int8.

Dynamic int8 (onnxruntime's ``DynamicQuantizeMatMul`` and ``QAttention``) rounds each
MatMul's input to 256 levels over the whole tensor and its weights to 255 levels per
output column; on the few texts whose score sits near the threshold, that flips the
label. Here the fine-tuned model runs with exactly that rounding simulated in PyTorch
(fake quantization, straight-through gradients, as the recipe would quantize each
MatMul) and its weights are tuned for a few hundred steps so that its logits match the
fine-tuned model's own, on training texts only. The tuned weights stay fp32 and go
through the recipe as usual; parity is still measured against the fine-tuned model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.nn.utils import parametrize

from schemas.errors import ConfigurationError
from training.config import QuantAwareConfig, QuantRecipe
from training.export.quantize import WEIGHT_ONLY_BLOCK, in_lower_layers, int8_rows, layer_index
from training.finetune.data import encode_texts, length_batches, logits_of, pad_batch
from training.finetune.result import FinetuneResult
from training.prepare.run import read_split

Mode = Literal["int8", "weight_only", "fp32"]

#: The ``Linear``s that ORT's fusion turns into one ``Attention_<layer>`` node.
_FUSED_INTO_ATTENTION = (".attention.self.query", ".attention.self.key", ".attention.self.value")


def onnx_matmul_name(module_name: str) -> str:
    """The ONNX node name the exporter gives a ``Linear``'s MatMul
    (``bert.encoder.layer.0.output.dense`` -> ``/model/bert/encoder/layer.0/output/dense/MatMul``),
    which the recipes' node patterns are written against."""
    parts: list[str] = []
    for part in module_name.split("."):
        if part.isdigit() and parts:
            parts[-1] = f"{parts[-1]}.{part}"
        else:
            parts.append(part)
    return "/model/" + "/".join(parts) + "/MatMul"


def linear_modes(model: torch.nn.Module, recipe: QuantRecipe) -> dict[str, Mode]:
    """How ``recipe`` quantizes each ``Linear`` of ``model``, by module name."""
    if recipe.smooth_nodes or recipe.outlier_channels or recipe.tanh_gelu:
        raise ConfigurationError(
            "quantization-aware tuning simulates recipes without SmoothQuant, fp32 outlier "
            "channels or tanh GELU; pick another recipe or set the quant-aware steps to 0"
        )

    def matches(patterns: tuple[str, ...], names: list[str]) -> bool:
        return any(re.search(p, n) for p in patterns for n in names)

    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    lower = set(in_lower_layers(linears, recipe.weight_only_lower_share))
    modes: dict[str, Mode] = {}
    for name in linears:
        names = [onnx_matmul_name(name)]
        layer = layer_index(name)
        if recipe.fuse and layer is not None and name.endswith(_FUSED_INTO_ATTENTION):
            names.append(f"Attention_{layer}")  # the fused node they become
        if matches(recipe.exclude_nodes, names):
            modes[name] = "fp32"
        elif name in lower and matches(recipe.weight_only_nodes, names):
            modes[name] = "weight_only"
        else:
            modes[name] = "int8"
    return modes


def _straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    """``rounded`` forward, identity backward."""
    return x + (rounded - x).detach()


def fake_quant_activation(x: torch.Tensor) -> torch.Tensor:
    """ONNX ``DynamicQuantizeLinear``: uint8, one scale and zero point for the whole
    tensor from its min and max (0 always inside the range), round half to even."""
    low = torch.clamp(x.detach().min(), max=0.0)
    high = torch.clamp(x.detach().max(), min=0.0)
    scale = torch.clamp((high - low) / 255.0, min=torch.finfo(x.dtype).tiny)
    zero = torch.clamp(torch.round(-low / scale), 0, 255)
    q = torch.clamp(torch.round(x / scale) + zero, 0, 255)
    return _straight_through(x, (q - zero) * scale)


class FakeQuantWeight(torch.nn.Module):
    """Symmetric int8 weights ([-127, 127], as onnxruntime's quantizer writes QInt8):
    one scale per output channel or per tensor, or per block of K for weight-only."""

    def __init__(self, mode: Mode, per_channel: bool) -> None:
        super().__init__()
        self.mode = mode
        self.per_channel = per_channel

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # [out, in]
        w = weight.detach()
        if self.mode == "weight_only":
            out, k = w.shape
            pad = -k % WEIGHT_ONLY_BLOCK
            blocks = torch.nn.functional.pad(w, (0, pad)).reshape(out, -1, WEIGHT_ONLY_BLOCK)
            amax = blocks.abs().amax(dim=-1, keepdim=True)
            amax = amax.expand_as(blocks).reshape(out, -1)[:, :k]
        elif self.per_channel:
            amax = w.abs().amax(dim=1, keepdim=True)
        else:
            amax = w.abs().amax()
        scale = torch.clamp(amax / 127.0, min=torch.finfo(w.dtype).tiny)
        return _straight_through(
            weight, torch.clamp(torch.round(weight / scale), -127, 127) * scale
        )


def _quantize_rows_(table: torch.Tensor) -> None:
    """The per-row int8 word embeddings of ``quantize_embedding_rows``, in place."""
    rows, scale = int8_rows(table.detach().cpu().numpy())
    with torch.no_grad():
        table.copy_(torch.from_numpy(rows.astype(np.float32) * scale))


@contextmanager
def simulated_int8(model: torch.nn.Module, recipe: QuantRecipe) -> Iterator[dict[str, Mode]]:
    """``model`` computes as ``recipe``'s int8 graph would, inside the block; on exit its
    ``Linear`` weights are the raw (tuned) fp32 ones again. Yields the modes."""
    modes = linear_modes(model, recipe)
    linears = dict(model.named_modules())
    hooks = []
    for name, mode in modes.items():
        if mode == "fp32":
            continue
        linear = linears[name]
        parametrize.register_parametrization(
            linear, "weight", FakeQuantWeight(mode, recipe.per_channel)
        )
        if mode == "int8":
            hooks.append(
                linear.register_forward_pre_hook(
                    lambda _m, args: (fake_quant_activation(args[0]), *args[1:])
                )
            )
    try:
        yield modes
    finally:
        for hook in hooks:
            hook.remove()
        for name, mode in modes.items():
            if mode != "fp32":
                parametrize.remove_parametrizations(
                    linears[name], "weight", leave_parametrized=False
                )


def centred(logits: torch.Tensor) -> torch.Tensor:
    """Logits less their mean per row: what softmax sees (for two labels, half the margin
    the threshold cuts)."""
    return logits - logits.mean(dim=-1, keepdim=True)


def tune_under_int8(
    model: torch.nn.Module,
    input_ids: list[list[int]],
    target: torch.Tensor,
    pad_id: int,
    recipe: QuantRecipe,
    config: QuantAwareConfig,
    rng: np.random.Generator,
) -> list[dict[str, float]]:
    """``config.steps`` optimiser steps on ``model``'s trainable weights, run under
    ``recipe``'s simulated int8, toward ``target`` logits (one row per text); returns the
    loss every 25 steps."""
    if not input_ids:  # else the loop below would wait for a batch forever
        raise ConfigurationError("quant-aware tuning needs training texts; there are none")
    device = next(model.parameters()).device
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    lengths = [len(ids) for ids in input_ids]
    history: list[dict[str, float]] = []
    step = 0
    # Eval mode: no dropout, so the only difference from the target is the rounding.
    model.eval()
    with simulated_int8(model, recipe):
        while step < config.steps:
            for rows in length_batches(lengths, config.batch_size, rng):
                batch = pad_batch([input_ids[i] for i in rows], pad_id)
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                expected = target[torch.as_tensor(rows)].to(device)
                loss = torch.nn.functional.mse_loss(centred(logits), centred(expected))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                optimizer.zero_grad()
                step += 1
                if step % 25 == 0 or step == config.steps:
                    history.append({"step": step, "loss": float(loss.item())})
                    if config.progress:
                        print(f"quant-aware step {step}/{config.steps} loss {loss.item():.5f}")
                if step >= config.steps:
                    break
    return history


def quant_aware_tune(
    model_dir: Path,
    data_dir: Path,
    out_dir: Path,
    recipe: QuantRecipe,
    config: QuantAwareConfig,
) -> FinetuneResult:
    """Tune ``model_dir``'s weights under ``recipe``'s simulated int8 toward its own fp32
    logits on the train split; save the tuned model (and its ``training_info.json``) in
    ``out_dir`` for export."""
    from training.export.onnx_export import load_for_export
    from training.finetune.trainer import torch_device
    from training.tokenizer_loading import load_tokenizer

    info = FinetuneResult.load(model_dir)
    device = torch_device(config.device)
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(model_dir)
    pad_id = int(tokenizer.pad_token_id or 0)
    texts = read_split(data_dir, "train")["text"].astype(str).tolist()
    rng = np.random.default_rng(config.seed)
    wanted = min(len(texts), config.steps * config.batch_size)
    picked = sorted(rng.choice(len(texts), size=wanted, replace=False))
    input_ids = encode_texts(
        [texts[i] for i in picked], tokenizer, info.max_length, info.normalization
    )

    model = load_for_export(model_dir).to(device)  # type: ignore[arg-type]
    target = logits_of(model, input_ids, pad_id, config.batch_size * 2)
    embeddings = model.get_input_embeddings()
    if recipe.int8_embedding_rows:
        _quantize_rows_(embeddings.weight)
    embeddings.requires_grad_(False)
    started = time.perf_counter()
    history = tune_under_int8(model, input_ids, target, pad_id, recipe, config, rng)
    model.to("cpu")  # type: ignore[arg-type]
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tuned = info.model_copy(
        update={
            "history": [*info.history, *({"quant_aware": h} for h in history)],
            "config": {
                **info.config,
                "quant_aware": {
                    "steps": config.steps,
                    "batch_size": config.batch_size,
                    "learning_rate": config.learning_rate,
                    "texts": wanted,
                    "seconds": round(time.perf_counter() - started, 1),
                    "tuned_from": str(model_dir),
                },
            },
        }
    )
    return tuned.save(out_dir)
