"""The prepare stage's typed hand-off: ``metadata.json`` beside the written splits.

Fine-tuning reads the normalisation from it (so ``train finetune`` alone trains on what
prepare audited), and export reads the data's description for the bundle. Inputs and
splits are named by file name, row count and content hash, never by a machine path:
this travels inside the bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from schemas.errors import ConfigurationError
from schemas.text import NormalizationSettings
from training.provenance import content_sha256


class SplitFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    rows: int
    sha256: str

    @classmethod
    def describe(cls, path: Path, rows: int) -> SplitFile:
        return cls(file=path.name, rows=rows, sha256=content_sha256(path))


class PreparedData(BaseModel):
    """Splits, normalisation and inputs are typed; the rest of prepare's summary (steps,
    drops, audits) rides along as extra fields for reports and the model card."""

    model_config = ConfigDict(extra="allow")
    FILE: ClassVar[str] = "metadata.json"

    splits: dict[str, SplitFile]
    normalization: NormalizationSettings
    #: One entry per input table: name, rows read, weight, sha256 (when a local file).
    inputs: list[dict[str, Any]]
    _directory: Path | None = PrivateAttr(default=None)

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise ConfigurationError("this PreparedData was not saved or loaded")
        return self._directory

    @property
    def rows(self) -> dict[str, int]:
        return {name: split.rows for name, split in self.splits.items()}

    @property
    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def split_path(self, name: str) -> Path:
        return self.directory / self.splits[name].file

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data a model was trained on (and its validation split)."""
        return {
            "splits": {name: split.model_dump() for name, split in self.splits.items()},
            "inputs": self.inputs,
        }

    def save(self, directory: Path) -> PreparedData:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / self.FILE).write_text(self.model_dump_json(indent=2) + "\n")
        self._directory = directory
        return self

    @classmethod
    def load(cls, directory: Path) -> PreparedData:
        path = directory / cls.FILE
        if not path.is_file():
            raise ConfigurationError(f"{path} not found: run `depdetect train prepare` first")
        try:
            prepared = cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise ConfigurationError(
                f"{path} is not a prepare manifest; run `depdetect train prepare` again: {exc}"
            ) from exc
        prepared._directory = directory
        return prepared
