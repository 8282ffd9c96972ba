"""The classifier service: a faststream application over Kafka.

    depdetect serve                                   # one process
    faststream run services.classifier.app:create_app_from_env --factory --workers 2

Each process joins the consumer group; Kafka spreads the partitions over them.
Ack policy: offsets are committed after the batch's dead letters, result rows and
review events are all confirmed (at-least-once); on any error the batch is nacked
(every partition rewound to its first record) and comes back after a pause.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import make_asgi_app

from depdetect.settings import Settings, load_settings
from schemas.messages import DeadLetter, ReviewRequest
from schemas.migrate import upgrade
from services.classifier.batch import BatchProcessor
from services.classifier.health import make_health_handler
from services.classifier.metrics import ServiceMetrics
from services.classifier.retry import Retrier
from services.inference.runner import ModelRunner
from services.kafka.admin import BrokerQuorum, check_topics
from services.storage.engine import make_engine
from services.storage.results import ResultStore

log = logging.getLogger("depdetect.classifier")

#: Pause before a failed batch is fetched again, so a broken dependency is not hammered.
NACK_PAUSE_S = 2.0


@dataclass
class ServiceState:
    """What the lifespan builds and the handler uses (no import-time singletons)."""

    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    processor: BatchProcessor | None = None
    quorum: BrokerQuorum | None = None


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    settings = settings or load_settings()
    state = ServiceState()
    kafka = settings.kafka
    broker = KafkaBroker(
        kafka.bootstrap_servers,
        client_id=kafka.client_id,
        acks="all",
        enable_idempotence=True,
        graceful_timeout=30.0,
        logger=log,
    )
    review_publisher = broker.publisher(
        kafka.review_topic,
        title="review-requests",
        schema=ReviewRequest,
        description="One event per flagged text, for a human moderator.",
    )
    dead_letter_publisher = broker.publisher(
        kafka.dead_letter_topic,
        title="dead-letters",
        schema=DeadLetter,
        description="Records that broke the contract, with the reason and the original bytes.",
    )
    publishers = {
        kafka.review_topic: review_publisher,
        kafka.dead_letter_topic: dead_letter_publisher,
    }

    async def publish(topic: str, value: bytes, key: bytes | None, headers: dict[str, str]) -> Any:
        future = await publishers[topic].publish(value, key=key, headers=headers, no_confirm=True)
        return await future

    @broker.subscriber(
        *kafka.input_topics,
        group_id=kafka.consumer_group,
        batch=True,
        max_records=kafka.batch_max_records,
        batch_timeout_ms=kafka.batch_max_wait_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_values,
        title="submitted-texts",
        description="Texts to screen (SubmittedText contract).",
    )
    async def on_texts(body: list[bytes], message: KafkaMessage) -> None:
        # Validation is ours, not the framework's: a record that fails it must reach the
        # dead-letter topic with its original bytes, never stop or loop the consumer.
        assert state.processor is not None
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        try:
            outcome = await state.processor.process(records)
        except Exception:
            log.exception("batch of %d failed; it will be redelivered", len(records))
            await asyncio.sleep(NACK_PAUSE_S)
            raise
        log.info(
            "batch consumed=%d classified=%d stored=%d flagged=%d dead_lettered=%d reviews=%d %s",
            outcome.consumed,
            outcome.classified,
            outcome.stored,
            outcome.flagged,
            outcome.dead_lettered,
            outcome.reviews_published,
            " ".join(f"{k}_ms={v:.0f}" for k, v in outcome.timings_ms.items()),
        )
        await _record_lag(message, state.metrics)

    async def start() -> None:
        if settings.model.bundle_path is None:
            raise SystemExit(
                "no model bundle configured: set DEPDETECT_MODEL__BUNDLE_PATH "
                "(build one with `depdetect train all`)"
            )
        runner = ModelRunner.from_bundle(
            settings.model.bundle_path,
            micro_batch_size=settings.model.inference_batch_size,
            intra_op_threads=settings.model.intra_op_threads,
            inter_op_threads=settings.model.inter_op_threads,
        )
        runner.warm_up()
        state.metrics.model_loaded.labels(runner.model_version).set(1)
        if settings.database.auto_migrate:
            await asyncio.to_thread(upgrade, settings.database.url)
        # One clear line now, rather than batch after batch timing out on bad topics.
        state.quorum = await check_topics(settings.kafka)
        state.processor = BatchProcessor(
            settings=settings,
            runner=runner,
            store=ResultStore(make_engine(settings.database.url, echo=settings.database.echo)),
            publish=publish,
            retry=Retrier(state.stopping, state.metrics),
            metrics=state.metrics,
        )
        log.info(
            "model %s loaded from %s (threshold %.3f)",
            runner.model_version,
            settings.model.bundle_path,
            state.processor.threshold,
        )

    async def sweep() -> None:
        assert state.processor is not None
        if swept := await state.processor.sweep_outbox():
            log.info("published %d review events left over from an earlier run", swept)

    async def stop() -> None:
        state.stopping.set()

    async def after_stop() -> None:
        if state.processor is not None:
            state.processor.store.engine.dispose()

    async def broker_ok() -> bool:
        return bool(await broker.ping(timeout=2))

    async def database_ok() -> bool:
        return state.processor is not None and await asyncio.to_thread(state.processor.store.ping)

    async def model_ok() -> bool:
        return state.processor is not None

    app = AsgiFastStream(
        broker,
        asgi_routes=[
            (
                "/health",
                make_health_handler(
                    {"broker": broker_ok, "database": database_ok, "model": model_ok}
                ),
            ),
            ("/metrics", make_asgi_app(state.metrics.registry)),
        ],
        on_startup=[start],
        after_startup=[sweep],
        on_shutdown=[stop],
        after_shutdown=[after_stop],
        logger=log,
    )
    return app


async def _raw_values(message: StreamMessage[Any]) -> list[bytes]:
    """Keep each record's bytes as they are (the default decoder would parse JSON)."""
    raw = message.raw_message
    records = raw if isinstance(raw, tuple) else (raw,)
    return [r.value or b"" for r in records]


async def _record_lag(message: KafkaMessage, metrics: ServiceMetrics) -> None:
    consumer = getattr(message, "consumer", None)
    if consumer is None or not hasattr(consumer, "assignment"):
        return
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = await consumer.position(tp)
        except Exception:  # a partition revoked mid-way has no position
            continue
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))


def create_app_from_env() -> AsgiFastStream:
    """Entry point for `faststream run services.classifier.app:create_app_from_env --factory`:
    settings from the environment, and logging set up as `depdetect serve` does."""
    from depdetect.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
