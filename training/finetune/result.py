"""The fine-tuning stage's typed hand-off: ``training_info.json`` in the model directory.

Export reads it with :meth:`FinetuneResult.load`; it carries what the next stage needs
(base model, max length, normalisation, target precision) and the validation metrics.
No machine paths: the model directory is where the file was loaded from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from schemas.errors import ConfigurationError
from schemas.messages import Label
from schemas.text import NormalizationSettings

LABELS = [Label.NO_INDICATORS.value, Label.INDICATORS.value]


class FinetuneResult(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    FILE: ClassVar[str] = "training_info.json"

    base_model: str
    labels: list[str] = Field(default_factory=lambda: list(LABELS))
    max_length: int
    normalization: NormalizationSettings
    #: Export tunes the shipped threshold for this precision on the quantized scores.
    target_precision: float
    #: Validation metrics of the best checkpoint at 0.5, overall and per language.
    validation: dict[str, Any]
    best_step: int | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    steps: int
    train_seconds: float
    config: dict[str, Any] = Field(default_factory=dict)
    #: Fingerprint of the prepared splits trained on (names, rows, hashes).
    data: dict[str, Any] = Field(default_factory=dict)
    _directory: Path | None = PrivateAttr(default=None)

    @property
    def model_dir(self) -> Path:
        if self._directory is None:
            raise ConfigurationError("this FinetuneResult was not saved or loaded")
        return self._directory

    def save(self, directory: Path) -> FinetuneResult:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / self.FILE).write_text(self.model_dump_json(indent=2) + "\n")
        self._directory = directory
        return self

    @classmethod
    def load(cls, directory: Path) -> FinetuneResult:
        path = directory / cls.FILE
        if not path.is_file():
            raise ConfigurationError(f"{path} not found: run `depdetect train finetune` first")
        try:
            result = cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise ConfigurationError(
                f"{path} is not a fine-tuning result; run `depdetect train finetune` again: {exc}"
            ) from exc
        result._directory = directory
        return result
