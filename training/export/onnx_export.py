"""PyTorch -> ONNX with the bundle's input/output contract."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "logits"


class _LogitsOnly(torch.nn.Module):
    """Returns a plain tensor so the graph has exactly one output named ``logits``."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def load_for_export(model_dir: Path) -> PreTrainedModel:
    # Eager attention traces to plain MatMul/Softmax that ORT fuses and quantizes well.
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager"
    )
    return model.eval()


def export_onnx(model_dir: Path, out_path: Path, opset: int = 17) -> Path:
    """Dynamic axes: batch and sequence on both inputs, batch only on the logits."""
    model = load_for_export(model_dir)
    sample = torch.ones((2, 8), dtype=torch.long)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated but needs no onnxscript, and it exports
        # these encoders exactly (fp32 logits within ~1e-6 of PyTorch).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LogitsOnly(model),
            (sample, sample.clone()),
            str(out_path),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                OUTPUT: {0: "batch"},
            },
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return out_path
