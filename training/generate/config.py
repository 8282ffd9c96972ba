"""What to generate (persisted with a run) and how to run it (free to change on resume).

`GenerationConfig` fixes the plan, the prompts and the validation rules: a run directory
stores it, and resuming with a different one is refused, because the requests already
paid for were built from the stored one. `RunOptions` only affects how the work is
carried out (batch sizes, polling, retries) and may differ between invocations.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from depdetect.settings import AnthropicSettings, DataSettings
from schemas.errors import ConfigurationError

#: The six languages the product screens; the language detector is restricted to them.
SUPPORTED_LANGUAGES: dict[str, str] = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "it": "Italian",
    "pt": "Portuguese",
    "es": "Spanish",
}
STATES: tuple[str, ...] = ("Healthy", "Unhealthy")
DEFAULT_CATEGORIES: tuple[str, ...] = (
    "Self-Worth",
    "Future Outlook",
    "Social Impact",
    "Emotional Resilience",
    "Self-Reflection/Growth",
)

# Documented limits of the Message Batches API; a batch is cut at whichever comes first.
API_MAX_REQUESTS_PER_BATCH = 100_000
API_MAX_BATCH_BYTES = 256 * 1024 * 1024


class Bucket(BaseModel):
    """A range of words per text and the share of texts it should get."""

    model_config = ConfigDict(frozen=True)

    min_words: int = Field(ge=1)
    max_words: int = Field(ge=1)
    share: float = Field(gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Bucket:
        if self.max_words < self.min_words:
            raise ValueError(f"bucket {self.min_words}-{self.max_words} is empty")
        return self

    @property
    def label(self) -> str:
        return f"{self.min_words}-{self.max_words}"

    @property
    def mean_words(self) -> float:
        return (self.min_words + self.max_words) / 2

    def allowed(self, tolerance: float) -> tuple[int, int]:
        """Word counts accepted for this bucket: the range widened by `tolerance` each way."""
        low = max(1, math.floor(self.min_words * (1 - tolerance)))
        high = math.ceil(self.max_words * (1 + tolerance))
        return low, high


DEFAULT_BUCKETS: tuple[Bucket, ...] = (
    Bucket(min_words=3, max_words=8, share=0.20),
    Bucket(min_words=9, max_words=15, share=0.10),
    Bucket(min_words=16, max_words=35, share=0.40),
    Bucket(min_words=36, max_words=60, share=0.20),
    Bucket(min_words=61, max_words=90, share=0.10),
)


class Pricing(BaseModel):
    """US$ per million tokens, for the dry-run estimate only (defaults: Claude Sonnet 4.5)."""

    model_config = ConfigDict(frozen=True)

    input_per_mtok: float = Field(default=3.0, ge=0.0)
    output_per_mtok: float = Field(default=15.0, ge=0.0)
    #: Batches are billed at a fraction of the standard price (50 % at the time of writing).
    batch_discount: float = Field(default=0.5, gt=0.0, le=1.0)


class GenerationConfig(BaseModel):
    """Everything that decides which requests are sent and which texts are kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    languages: tuple[str, ...] = tuple(SUPPORTED_LANGUAGES)
    states: tuple[str, ...] = STATES
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    buckets: tuple[Bucket, ...] = DEFAULT_BUCKETS
    #: Mean texts per (language, state, category, bucket) cell. Each (language, state,
    #: category) group gets texts_per_cell × len(buckets) texts, split by bucket share.
    texts_per_cell: int = Field(default=100, ge=1)
    #: Texts asked for in one request (all of one cell, one persona).
    texts_per_request: int = Field(default=5, ge=1, le=50)
    #: Testimonials shown as style anchors in each prompt.
    testimonials_per_prompt: int = Field(default=3, ge=0, le=10)
    seed: int = 20250103
    #: Relative widening of each bucket's word range before a text is rejected.
    length_tolerance: float = Field(default=0.15, ge=0.0, lt=1.0)
    model: str = "claude-sonnet-4-5"
    temperature: float = Field(default=1.0, ge=0.0, le=1.0)
    max_tokens: int = Field(default=4096, ge=1)
    #: Ask the API for JSON-schema constrained output (structured outputs). Parsing stays
    #: tolerant either way, for models or accounts without the feature.
    structured_output: bool = True
    pricing: Pricing = Field(default_factory=Pricing)
    #: Rough tokens per word of output across the six languages, for the estimate.
    tokens_per_word: float = Field(default=1.6, gt=0.0)
    #: Rough characters per input token, for the estimate.
    chars_per_token: float = Field(default=3.5, gt=0.0)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [code for code in value if code not in SUPPORTED_LANGUAGES]
        if unknown or not value:
            raise ValueError(
                f"languages must be a non-empty subset of {sorted(SUPPORTED_LANGUAGES)}; "
                f"unknown: {unknown}"
            )
        return _unique(value, "languages")

    @field_validator("states")
    @classmethod
    def _known_states(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(state not in STATES for state in value):
            raise ValueError(f"states must be a non-empty subset of {list(STATES)}")
        return _unique(value, "states")

    @field_validator("categories")
    @classmethod
    def _some_categories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one category is needed")
        return _unique(value, "categories")

    @field_validator("buckets")
    @classmethod
    def _shares_sum_to_one(cls, value: tuple[Bucket, ...]) -> tuple[Bucket, ...]:
        if not value:
            raise ValueError("at least one bucket is needed")
        total = sum(bucket.share for bucket in value)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"bucket shares must sum to 1, not {total:.4f}")
        _unique(tuple(bucket.label for bucket in value), "buckets")
        return value

    @classmethod
    def from_settings(cls, anthropic: AnthropicSettings, **overrides: object) -> GenerationConfig:
        """Model id, temperature and max tokens come from the one settings object."""
        values: dict[str, object] = {
            "model": anthropic.model,
            "temperature": anthropic.temperature,
            "max_tokens": anthropic.max_tokens,
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        try:
            return cls.model_validate(values)
        except ValueError as exc:
            raise ConfigurationError(f"invalid generation config: {exc}") from exc

    def fingerprint(self) -> str:
        """Stable hash of the config; a run directory only resumes with the same one."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def _unique(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} contain duplicates: {list(values)}")
    return values


@dataclass(frozen=True)
class Timing:
    """Waits between API calls; tests set them to zero."""

    poll_initial_s: float = 30.0
    poll_max_s: float = 600.0
    poll_factor: float = 1.5
    #: Back-off for rate-limited or overloaded batch creation (tenacity, exponential).
    create_wait_min_s: float = 5.0
    create_wait_max_s: float = 300.0
    create_attempts: int = 8


@dataclass(frozen=True)
class RunOptions:
    """How to carry out a run; may change between invocations of the same run."""

    seed_dir: Path
    max_requests_per_batch: int = 5_000
    #: Stay clear of the 256 MB API limit: the SDK adds a little around our bytes.
    max_batch_bytes: int = 200 * 1024 * 1024
    #: Resubmissions allowed per request after errored/expired/canceled/unparseable results.
    retry_limit: int = 2
    #: SDK-level retries for idempotent calls (retrieve, results, list).
    sdk_max_retries: int = 4
    timing: Timing = field(default_factory=Timing)
    show_progress: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_requests_per_batch <= API_MAX_REQUESTS_PER_BATCH:
            raise ConfigurationError(
                f"max_requests_per_batch must be 1..{API_MAX_REQUESTS_PER_BATCH}"
            )
        if not 1024 <= self.max_batch_bytes <= API_MAX_BATCH_BYTES:
            raise ConfigurationError(f"max_batch_bytes must be 1024..{API_MAX_BATCH_BYTES}")
        if self.retry_limit < 0:
            raise ConfigurationError("retry_limit must be >= 0")

    @classmethod
    def from_settings(cls, data: DataSettings, **overrides: object) -> RunOptions:
        values = {key: value for key, value in overrides.items() if value is not None}
        return cls(seed_dir=data.seed_dir, **values)  # type: ignore[arg-type]
