"""The student: the teacher with fewer encoder layers, each copied from the teacher.

Initialising from the teacher's own layers (embeddings, the chosen layers, pooler and
classification head) starts the student close to the teacher, so a short distillation
recovers most of its quality (as DistilBERT does from BERT).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from schemas.errors import ConfigurationError


def chosen_layers(total: int, keep: int, choice: str) -> list[int]:
    """Teacher layer indices the student keeps, bottom to top."""
    if not 1 <= keep <= total:
        raise ConfigurationError(f"the teacher has {total} layers; cannot keep {keep}")
    if choice == "first":
        return list(range(keep))
    # Evenly spaced, ending at the top layer (whose output the head was trained on).
    return [round((i + 1) * total / keep) - 1 for i in range(keep)]


def _layer_stack(model: PreTrainedModel) -> torch.nn.ModuleList:
    encoder = getattr(model.base_model, "encoder", None)
    stack = getattr(encoder, "layer", None)
    if not isinstance(stack, torch.nn.ModuleList):
        raise ConfigurationError(
            f"{type(model).__name__}: no encoder.layer stack to take layers from "
            "(BERT/RoBERTa/XLM-R style encoders are supported)"
        )
    return stack


def build_student(teacher: PreTrainedModel, layers: Sequence[int]) -> PreTrainedModel:
    """A deep copy of ``teacher`` keeping only ``layers`` (teacher indices)."""
    _layer_stack(teacher)  # refuse unknown architectures before copying
    student = copy.deepcopy(teacher)
    stack = _layer_stack(student)
    encoder = getattr(student.base_model, "encoder")  # noqa: B009 - checked above
    encoder.layer = torch.nn.ModuleList([stack[i] for i in layers])
    student.config.num_hidden_layers = len(layers)
    return student
