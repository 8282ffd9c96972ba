"""The one typed settings object.

Every value comes from an environment variable with the prefix ``DEPDETECT_``;
nested groups use a double underscore, e.g. ``DEPDETECT_KAFKA__BOOTSTRAP_SERVERS``
or ``DEPDETECT_DATABASE__URL``. Build it once at the edge (CLI, app factory) with
:func:`load_settings` and pass it down; nothing deeper reads the environment.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Repository root when running from a checkout (deploy scripts, sample data live here).
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "DEPDETECT_"


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["texts.submitted"]
    )
    review_topic: str = "texts.review-requests"
    dead_letter_topic: str = "texts.dead-letter"
    decision_topic: str = "texts.moderator-decisions"
    consumer_group: str = "depdetect-classifier"
    client_id: str = "depdetect"
    #: Partitions for topics this project creates (consumer-group members scale up to this).
    partitions: int = Field(default=3, ge=1)
    #: Replicas per topic partition; None takes it from the cluster: 3 on three or more
    #: brokers, else as many as there are brokers (1 on a single node).
    replication_factor: int | None = Field(default=None, ge=1)
    #: Replicas that must confirm a write (acks=all); None: 2 with three replicas or
    #: more, else 1. Two of three lets one broker die without losing a confirmed record.
    min_insync_replicas: int | None = Field(default=None, ge=1)
    #: Most records per consumed batch. A fetch returns what is buffered, so batches are
    #: small when texts trickle in (low latency) and full under a backlog, where a large
    #: batch sorted by length wastes the least padding (throughput).
    batch_max_records: int = Field(default=256, ge=1)
    batch_max_wait_ms: int = Field(default=200, ge=0)
    #: A member that does not come back for records within this long is dropped from the
    #: group (Kafka's max.poll.interval.ms); the service's retries must stay under it.
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    #: Largest request the producer sends (aiokafka max_request_size); dead letters that
    #: would be larger are truncated, with the truncation recorded in their headers.
    max_request_bytes: int = Field(default=1_048_576, ge=10_000)

    @field_validator("input_topics", mode="before")
    @classmethod
    def _split_topics(cls, value: object) -> object:
        # Allow "a,b" in an environment variable as well as a JSON list.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [t.strip() for t in value.split(",") if t.strip()]
        return value


class StoreUnflagged(StrEnum):
    """What the service keeps for texts below the threshold."""

    NOTHING = "nothing"
    """No row at all: the least sensitive choice (default)."""
    SCORE = "score"
    """A row with the score and metadata, never the text."""


class DatabaseSettings(BaseModel):
    #: SQLite file by default (embedded, nothing to run); PostgreSQL by URL.
    url: str = f"sqlite:///{REPO_ROOT / 'var' / 'depdetect.db'}"
    echo: bool = False
    #: Services bring the schema up to date at start (the embedded default needs no extra step).
    auto_migrate: bool = True
    #: Seconds to wait for a connection (PostgreSQL connect_timeout).
    connect_timeout_s: int = Field(default=5, ge=1)
    #: Longest a statement may run before the server cancels it (PostgreSQL statement_timeout)
    #: and the service's own wait gives up on a call (every database), so that a hanging
    #: database makes the retries fire instead of blocking the consumer forever.
    statement_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        # Users paste plain postgres:// URLs; SQLAlchemy needs the driver named.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value


class ContractSettings(BaseModel):
    #: Longest accepted text, in characters; longer ones are dead-lettered.
    max_text_chars: int = Field(default=5000, ge=1)


class ModelSettings(BaseModel):
    bundle_path: Path | None = None
    #: Overrides the bundle's tuned threshold when set.
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Most texts per onnxruntime run (runs are cut shorter where padding costs more).
    inference_batch_size: int = Field(default=32, ge=1)
    #: Texts per scoring call of the service: a batch is scored stripe by stripe, the
    #: next stripe while the last one is written and its reviews published. None: the
    #: whole batch at once. Overlap pays only where the model leaves a core free
    #: (intra_op_threads below the cores); on cores it uses fully, the write slowed the
    #: model by more than it saved (measured on 2 cores: model time +15-25 %).
    stripe_size: int | None = Field(default=None, ge=1)
    #: onnxruntime's threads; None: one per core this process may use (its affinity).
    intra_op_threads: int | None = Field(default=None, ge=1)
    inter_op_threads: int = Field(default=1, ge=1)
    #: Let onnxruntime's threads busy-wait between operators: a little faster on cores
    #: nothing else uses, slower where the broker or the database share them.
    spin_wait: bool = False
    #: What one more onnxruntime call costs, in padded token positions: micro-batches are
    #: cut where padding would cost more. None: the runner's CPU default (32); the
    #: benchmarks print the figure measured on the machine at hand.
    call_overhead_tokens: float | None = Field(default=None, ge=0)


class StorageSettings(BaseModel):
    store_unflagged: StoreUnflagged = StoreUnflagged.NOTHING
    #: Put the text itself into review events (else moderators fetch it by reference).
    review_includes_text: bool = True
    #: Rows older than this are purged by `depdetect results purge`; None keeps them.
    retention_days: int | None = Field(default=90, ge=1)


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    #: Public base URL used for links in review events.
    public_url: str = "http://127.0.0.1:8000"


class ConsoleSettings(BaseModel):
    """The moderators' review console and the analysts' dashboard (``/console``, ``/dashboard``)."""

    #: How long a browser stays signed in after exchanging its API token.
    session_ttl_minutes: int = Field(default=480, ge=1)
    #: How long opening an item keeps it from other moderators.
    claim_minutes: int = Field(default=10, ge=1)
    #: Aggregate cells (pages and /aggregates JSON) with fewer items than this are suppressed.
    min_cell_size: int = Field(default=10, ge=1)
    #: Mark the session cookie Secure even when a proxy terminates HTTPS in front of the app
    #: (requests seen over https get it anyway).
    secure_cookies: bool = False


class ServiceSettings(BaseModel):
    health_host: str = "127.0.0.1"
    health_port: int = 8081
    #: Test-only: exit hard (``os._exit(86)``) right after the first batch step of this kind
    #: that did some work (dead letters acked, rows committed, review events acked, outbox
    #: marked), before the offsets are committed; the crash-point tests use it.
    crash_after: Literal["dead_letters", "rows", "reviews", "outbox"] | None = None
    #: A record whose batch failed this many times as a whole is processed alone and,
    #: if it still fails, dead-lettered: nothing is retried forever.
    max_record_attempts: int = Field(default=5, ge=1)
    #: /health turns not-ready when records wait and nothing committed for this long.
    stall_after_s: float = Field(default=120.0, gt=0)
    #: How often unpublished review events (outbox) are looked for and published.
    outbox_sweep_interval_s: float = Field(default=30.0, gt=0)
    #: How long a batch retries an unavailable database before it is rewound (nacked) and
    #: fetched again (at most a third of kafka.max_poll_interval_ms: a handler that does not
    #: return in time would have the member evicted from its group).
    retry_for_s: float = Field(default=90.0, gt=0)


class AnthropicSettings(BaseModel):
    api_key: SecretStr | None = None
    model: str = "claude-sonnet-4-5"
    temperature: float = Field(default=1.0, ge=0.0, le=1.0)
    max_tokens: int = Field(default=4096, ge=1)


class DataSettings(BaseModel):
    seed_dir: Path = REPO_ROOT.parent / "shared" / "data" / "seed"
    sentiment_corpus: Path = REPO_ROOT.parent / "shared" / "data" / "multilingual_sentiments"
    #: Human-labelled tables (``*.csv``, ``text|label|language|source``) that
    #: ``train prepare --real-train`` adds to the inputs.
    real_train_dir: Path = REPO_ROOT.parent / "shared" / "data" / "real" / "train"
    #: Cross-domain dev suite: for reporting only (never trained or tuned on).
    dev_suite_dir: Path = REPO_ROOT.parent / "shared" / "data" / "real" / "dev"
    #: Holds sample.csv, which the demo trains its small bundle on.
    sample_dir: Path = REPO_ROOT / "training" / "sample_data"
    work_dir: Path = REPO_ROOT / "var" / "training"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    contract: ContractSettings = Field(default_factory=ContractSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    log_level: str = "INFO"
    #: "text" for people, "json" (one object per line) for log pipelines.
    log_format: Literal["text", "json"] = "text"

    def to_env(self) -> dict[str, str]:
        """The ``DEPDETECT_*`` variables that make a child process build these settings
        (fields left at None are omitted: their variable must be absent)."""
        env: dict[str, str] = {}

        def walk(model: BaseModel, prefix: str) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                key = f"{prefix}{name.upper()}"
                if isinstance(value, BaseModel):
                    walk(value, f"{key}__")
                elif value is not None:
                    env[key] = _env_value(value)

        walk(self, ENV_PREFIX)
        return env


def _env_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, list | dict | tuple):
        return json.dumps(value)
    return str(value)


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and `.env`) once; keyword overrides win."""
    return Settings(**overrides)  # type: ignore[arg-type]
