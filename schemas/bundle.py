"""The model bundle: the only thing the classifier service loads.

A bundle is one directory::

    model.onnx       quantized ONNX graph: inputs input_ids, attention_mask
                     (int64, [batch, sequence]); output logits ([batch, 2])
    tokenizer.json   a `tokenizers` fast tokenizer
    bundle.json      the manifest below
    MODEL_CARD.md    intended use, data, metrics, limits (optional for loading)

``model_version`` is a content hash of model.onnx and tokenizer.json, so a changed
file is detected at load time. Reading this module needs no torch.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import BundleError
from schemas.messages import Label, utcnow
from schemas.text import NormalizationSettings

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "bundle.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MODEL_CARD = "MODEL_CARD.md"
REQUIRED_FILES = (MANIFEST, MODEL_FILE, TOKENIZER_FILE)


class ChunkingSettings(BaseModel):
    """How a text longer than ``max_sequence_length`` tokens is scored.

    Off: the text is truncated (only its start is read). On: overlapping windows of
    ``max_sequence_length`` tokens (special tokens included) cover the text, each is
    scored, and the window margins (logit of "indicators" minus the other) are pooled.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    #: Tokens each window shares with the previous one.
    stride: int = Field(default=32, ge=0)
    #: ``max``: the most alarming window decides; ``mean_top_k``: mean of the k highest.
    pooling: Literal["max", "mean_top_k"] = "max"
    top_k: int = Field(default=2, ge=1)
    #: Windows per text at most (bounds the cost of a very long text; the rest is unread).
    max_chunks: int = Field(default=16, ge=1)


class Calibration(BaseModel):
    """P(indicators) = sigmoid(scale * margin + bias), margin = pooled logit difference.

    ``none`` keeps the plain softmax (scale 1, bias 0). ``temperature`` fits the scale
    only (1/T); ``platt`` fits scale and bias. Fit on the validation split.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["none", "temperature", "platt"] = "none"
    scale: float = Field(default=1.0, gt=0.0)
    bias: float = 0.0
    #: What it was fit on (rows, sources, log loss before/after): for the model card.
    fitted_on: dict[str, Any] = Field(default_factory=dict)


class BundleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format_version: int = BUNDLE_FORMAT_VERSION
    model_version: str
    base_model: str
    labels: list[str] = Field(
        default_factory=lambda: [Label.NO_INDICATORS.value, Label.INDICATORS.value]
    )
    #: Index of "indicators" in the logits.
    positive_index: int = 1
    threshold: float = Field(ge=0.0, le=1.0)
    max_sequence_length: int = Field(default=256, ge=8)
    normalization: NormalizationSettings = Field(default_factory=NormalizationSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    calibration: Calibration = Field(default_factory=Calibration)
    quantization: str | None = None
    input_names: list[str] = Field(default_factory=lambda: ["input_ids", "attention_mask"])
    output_name: str = "logits"
    created_at: datetime = Field(default_factory=utcnow)
    training_data: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


def content_hash(directory: Path) -> str:
    """The model version: a hash of the files that decide the model's outputs."""
    digest = hashlib.sha256()
    for name in (MODEL_FILE, TOKENIZER_FILE):
        with (directory / name).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return "m-" + digest.hexdigest()[:16]


def write_manifest(directory: Path, manifest: BundleManifest) -> BundleManifest:
    """Write bundle.json with the content hash filled in; returns the stored manifest."""
    stored = manifest.model_copy(update={"model_version": content_hash(directory)})
    (directory / MANIFEST).write_text(stored.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return stored


def read_manifest(directory: Path | str, *, verify_hash: bool = True) -> BundleManifest:
    """Validate a bundle directory and return its manifest, or raise ``BundleError``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"model bundle {directory} is not a directory")
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise BundleError(
            f"model bundle {directory} is missing {', '.join(missing)}; "
            "build one with `depdetect train all` or point DEPDETECT_MODEL__BUNDLE_PATH at a bundle"
        )
    try:
        raw = (directory / MANIFEST).read_text(encoding="utf-8")
        manifest = BundleManifest.model_validate_json(raw)
    except (ValidationError, UnicodeDecodeError) as exc:
        raise BundleError(f"{directory / MANIFEST} is not a valid manifest: {exc}") from exc
    if manifest.format_version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"model bundle {directory} has format version {manifest.format_version}; "
            f"this release loads version {BUNDLE_FORMAT_VERSION}"
        )
    if len(manifest.labels) != 2 or manifest.positive_index not in (0, 1):
        raise BundleError(f"model bundle {directory} must have two labels, got {manifest.labels}")
    if verify_hash and (actual := content_hash(directory)) != manifest.model_version:
        raise BundleError(
            f"model bundle {directory} was changed after it was built: manifest says "
            f"{manifest.model_version}, files hash to {actual}"
        )
    return manifest
