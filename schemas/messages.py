"""Message contracts on the Kafka topics.

Every message carries ``schema_version``. Consumers accept the versions in
``SUPPORTED_VERSIONS`` and refuse the rest with a clear reason rather than
guessing. ``decode`` turns raw Kafka bytes into a model or a ``ContractError``
whose text names the field and the problem (for the dead-letter record).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.errors import ContractError
from schemas.text import LANGUAGES as LANGUAGES  # the contract's languages

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
#: Used when no validation context gives a maximum (settings: contract.max_text_chars).
DEFAULT_MAX_TEXT_CHARS = 5000


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # Naive timestamps are ambiguous across producers; read them as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]
Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")]


class Label(StrEnum):
    """Model output. 'indicators' means the text shows depression indicators."""

    NO_INDICATORS = "no_indicators"
    INDICATORS = "indicators"


class Decision(StrEnum):
    """What a moderator concluded about a flagged text."""

    CONFIRMED = "confirmed_indicators"
    NOT_INDICATORS = "not_indicators"
    ESCALATED = "escalated"


class ContractModel(BaseModel):
    """Shared config: unknown fields are refused, values are strict about types."""

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)

    #: Name of the message kind in JSON Schema files and dead-letter reasons.
    kind: ClassVar[str] = "message"

    # Strict: "1" or 1.0 is a contract error, not silently read as version 1.
    schema_version: StrictInt = Field(
        default=SCHEMA_VERSION,
        description=f"Contract version (an integer); this release reads "
        f"{sorted(SUPPORTED_VERSIONS)}.",
    )

    @field_validator("schema_version", mode="after")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"unsupported schema_version {value}; this consumer reads "
                f"{sorted(SUPPORTED_VERSIONS)} (replay the dead letter with "
                "`depdetect dead-letters replay` once a consumer that reads it runs)"
            )
        return value


class SubmittedText(ContractModel):
    """A user text that a platform publishes for screening."""

    kind: ClassVar[str] = "submitted_text"

    # Required on the wire: a default made at decode time would differ on redelivery
    # and break idempotence. Producers (``services.publisher``) assign one.
    message_id: Identifier = Field(
        description="Producer-chosen unique id; the service is idempotent on it.",
    )
    text: str = Field(description="The text to screen (UTF-8, non-empty).")
    source: str = Field(
        default="unknown", min_length=1, max_length=200, description="Platform or channel."
    )
    author_ref: str | None = Field(
        default=None,
        max_length=200,
        description="Pseudonymous author reference (never a real name or address).",
    )
    language: Literal["en", "de", "fr", "it", "pt", "es"] | None = Field(
        default=None, description="ISO 639-1 code if the producer knows it; else detected."
    )
    created_at: AwareDatetime = Field(default_factory=utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text_fits(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("text is empty or only whitespace")
        limit = (info.context or {}).get("max_text_chars", DEFAULT_MAX_TEXT_CHARS)
        if len(value) > limit:
            raise ValueError(f"text has {len(value)} characters, more than the maximum {limit}")
        return value


class ClassificationResult(ContractModel):
    """The model's verdict on one text (also the shape of a result row)."""

    kind: ClassVar[str] = "classification_result"

    message_id: Identifier
    score: Score = Field(description="P(depression indicators) in [0, 1].")
    label: Label
    threshold: Score
    model_version: str = Field(min_length=1)
    language: str | None = None
    source: str = "unknown"
    submitted_at: AwareDatetime
    classified_at: AwareDatetime = Field(default_factory=utcnow)

    @property
    def flagged(self) -> bool:
        return self.label is Label.INDICATORS

    @model_validator(mode="after")
    def _label_matches_score(self) -> ClassificationResult:
        expected = Label.INDICATORS if self.score >= self.threshold else Label.NO_INDICATORS
        if self.label is not expected:
            raise ValueError(
                f"label {self.label.value!r} contradicts score {self.score} "
                f"and threshold {self.threshold}"
            )
        return self


class ReviewRequest(ContractModel):
    """Asks a moderator to look at one flagged text. Every flag produces one."""

    kind: ClassVar[str] = "review_request"

    review_id: Identifier = Field(default_factory=lambda: str(uuid.uuid4()))
    message_id: Identifier
    result_id: int = Field(ge=1, description="Primary key of the result row.")
    result_url: str | None = Field(default=None, description="Link to the result in the API.")
    text: str | None = Field(default=None, description="Omitted when sent by reference.")
    author_ref: str | None = None
    score: Score
    threshold: Score
    language: str | None = None
    source: str = "unknown"
    model_version: str
    flagged_at: AwareDatetime
    notice: str = Field(
        default="Screening support only, not a diagnosis. A person must review this.",
    )


class ModeratorDecision(ContractModel):
    """A moderator's decision on a flagged result. A new revision never overwrites an old one."""

    kind: ClassVar[str] = "moderator_decision"

    decision_id: Identifier = Field(default_factory=lambda: str(uuid.uuid4()))
    message_id: Identifier
    result_id: int = Field(ge=1)
    decision: Decision
    moderator_id: Identifier
    note: str | None = Field(default=None, max_length=2000)
    revision: int = Field(default=1, ge=1)
    decided_at: AwareDatetime = Field(default_factory=utcnow)


class DeadLetter(ContractModel):
    """A consumed record that could not be processed, with why and where it came from."""

    kind: ClassVar[str] = "dead_letter"

    reason: str
    error_type: str
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None = None
    payload_b64: str = Field(description="The original bytes, base64-encoded.")
    headers: dict[str, str] = Field(default_factory=dict)
    truncated: bool = Field(
        default=False,
        description="True when payload, key or headers were cut to fit the broker's maximum "
        "request size (the original sizes are in original_payload_bytes and the record headers).",
    )
    original_payload_bytes: int | None = Field(
        default=None, ge=0, description="Size of the original payload when it was truncated."
    )
    dead_lettered_at: AwareDatetime = Field(default_factory=utcnow)


MESSAGE_MODELS: tuple[type[ContractModel], ...] = (
    SubmittedText,
    ClassificationResult,
    ReviewRequest,
    ModeratorDecision,
    DeadLetter,
)

M = TypeVar("M", bound=ContractModel)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field: 'text: text is empty …'."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "message"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def decode(model: type[M], raw: bytes | str, *, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS) -> M:
    """Parse raw Kafka bytes into ``model`` or raise ``ContractError`` naming the problem."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1]
            raise ContractError(
                f"payload is not valid UTF-8 (byte {exc.start}: {bad!r})",
                field="payload",
            ) from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ContractError(
            f"payload is not valid JSON: {exc.msg} at position {exc.pos}", field="payload"
        ) from exc
    except RecursionError:  # "[[[[…" a few thousand deep: an attack, not a message
        raise ContractError("payload nests too deeply", field="payload") from None
    if not isinstance(data, dict):
        raise ContractError(
            f"payload must be a JSON object, got {type(data).__name__}", field="payload"
        )
    try:
        _refuse_unencodable(data)
        return model.model_validate(data, context={"max_text_chars": max_text_chars})
    except RecursionError:
        raise ContractError("payload nests too deeply", field="payload") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]["loc"]
        raise ContractError(
            describe_validation_error(exc), field=str(first[0]) if first else None
        ) from exc


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, string) for every key and string value in parsed JSON."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield path, k
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def _refuse_unencodable(data: dict[str, Any]) -> None:
    """JSON may escape what Unicode text cannot hold: a lone UTF-16 surrogate
    (``"\\ud83d"`` without its pair) cannot be encoded, tokenized or stored, and NUL
    (``"\\u0000"``) cannot be stored in PostgreSQL text. Both are refused here, in every
    field, so that all databases behave alike and the reason names the field."""
    for path, text in _strings(data, ""):
        where = path or "payload"
        if "\x00" in text:
            raise ContractError(f"{where}: contains a NUL character (\\u0000)", field=where)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ContractError(
                f"{where}: contains a lone UTF-16 surrogate at character {exc.start} "
                f"(U+{ord(text[exc.start]):04X}); send the pair or the character itself",
                field=where,
            ) from None


def encode(message: ContractModel) -> bytes:
    return message.model_dump_json().encode("utf-8")
