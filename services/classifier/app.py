"""The classifier service: a faststream application over Kafka.

    depdetect serve                                   # one process
    faststream run services.classifier.app:create_app_from_env --factory --workers 2

Each process joins the consumer group; Kafka spreads the partitions over them.
Ack policy: offsets are committed after the batch's dead letters, result rows and
review events are all confirmed (at-least-once). What happens on an error is the
failure policy's (``services.classifier.failure_policy``): poison records are
dead-lettered inside the batch; a batch that fails as a whole is nacked (every partition
rewound to its first record) and comes back after a growing pause, and after
``max_record_attempts`` failures its records are processed one by one; a fatal error
stops the service with exit status 70.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from prometheus_client import make_asgi_app

from depdetect.settings import Settings, load_settings
from schemas.messages import DeadLetter, ReviewRequest
from schemas.migrate import upgrade
from schemas.text import detect_language
from services.classifier.batch import BatchOutcome, BatchProcessor
from services.classifier.failure_policy import (
    FATAL_EXIT_CODE,
    Attempts,
    Fault,
    classify,
    describe,
)
from services.classifier.health import Progress, Unready, make_health_handler
from services.classifier.metrics import ServiceMetrics
from services.classifier.rebalance import BatchInFlight, FinishBatchBeforeRevoke
from services.classifier.retry import Retrier
from services.inference.runner import ModelRunner
from services.kafka.admin import BrokerQuorum, check_topics
from services.storage.engine import make_engine
from services.storage.results import ResultStore

log = logging.getLogger("depdetect.classifier")

#: Pause before a failed batch is fetched again (doubling per consecutive failure, up to
#: the maximum), so that a broken dependency is not hammered.
NACK_PAUSE_S = 1.0
NACK_PAUSE_MAX_S = 30.0


@dataclass
class ServiceState:
    """What the lifespan builds and the handler uses (no import-time singletons)."""

    #: Both built from the service settings (stall time, attempts per record).
    progress: Progress
    attempts: Attempts
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    in_flight: BatchInFlight = field(default_factory=BatchInFlight)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    processor: BatchProcessor | None = None
    consecutive_failures: int = 0
    #: Set when a fatal error stops the service; the process then exits with 70.
    fatal: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    quorum: BrokerQuorum | None = None


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    settings = settings or load_settings()
    state = ServiceState(
        progress=Progress(settings.service.stall_after_s),
        attempts=Attempts(settings.service.max_record_attempts),
    )
    kafka = settings.kafka
    # The handler must return (commit or nack) well within max.poll.interval, or the
    # member is evicted from its group: retries, one more attempt and the pause fit in it.
    poll_s = kafka.max_poll_interval_ms / 1000
    retry_for_s = min(settings.service.retry_for_s, poll_s / 3)
    max_pause_s = min(NACK_PAUSE_MAX_S, poll_s / 4)
    broker = KafkaBroker(
        # A list: faststream takes a "host1,host2" string for one host name.
        [server.strip() for server in kafka.bootstrap_servers.split(",")],
        client_id=kafka.client_id,
        acks="all",
        enable_idempotence=True,
        max_request_size=kafka.max_request_bytes,
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
        description="Records that could not be processed (contract errors; texts the model "
        "or the database refused), with the reason, the error class and the original bytes "
        "(cut to fit the broker's request size when too large: see `truncated`).",
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
        max_poll_interval_ms=kafka.max_poll_interval_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        # At a rebalance the batch in flight is finished and committed before its
        # partitions are handed over (else the new owner scores it again).
        listener=FinishBatchBeforeRevoke(state.in_flight, wait_s=poll_s / 2),
        decoder=_raw_values,
        title="submitted-texts",
        description="Texts to screen (SubmittedText contract).",
    )
    async def on_texts(body: list[bytes], message: KafkaMessage) -> None:
        state.in_flight.started()
        try:
            await handle(message)
        finally:
            state.in_flight.ended()

    async def handle(message: KafkaMessage) -> None:
        # Validation is ours, not the framework's: a record that fails it must reach the
        # dead-letter topic with its original bytes, never stop or loop the consumer.
        assert state.processor is not None
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        state.progress.batch_started()
        if redelivered := state.attempts.seen_before(records):
            state.metrics.redeliveries.inc(redelivered)
        try:
            outcome = await _process(state.processor, records, state)
        except Exception as exc:
            fault = classify(exc)
            state.metrics.failed_batches.labels(fault.value).inc()
            state.consecutive_failures += 1
            if fault is Fault.FATAL:
                _stop_fatally(state, describe(exc))
                await message.nack()
                return
            state.attempts.failed(records, counts=fault is not Fault.TRANSIENT)
            pause = min(max_pause_s, NACK_PAUSE_S * 2 ** (state.consecutive_failures - 1))
            # No traceback: the exception's own message may quote record values.
            log.error(
                "batch of %d failed (%s: %s); it will be redelivered in %.1fs",
                len(records),
                fault.value,
                describe(exc),
                pause,
            )
            await asyncio.sleep(pause * random.uniform(0.8, 1.2))
            # Rewind every partition of the batch to its first record; nothing is committed.
            # (Nacked here rather than raised: the framework would log the exception, whose
            # message may quote record values, and a traceback per failed batch.)
            await message.nack()
            # The lag gauge follows failures too: after the rewind it counts the batch again.
            await _record_lag(message, state)
            return
        state.consecutive_failures = 0
        state.attempts.succeeded(records)
        try:
            # Committed here rather than after return, so that a rebalance waiting on
            # this batch (``rebalance``) hands its partitions over committed.
            await message.ack()
        except KafkaError as exc:
            log.warning(
                "could not commit the batch's offsets (%s): the partitions' owner will "
                "process it again; its rows and events are not written twice",
                describe(exc),
            )
        log.info(
            "batch consumed=%d classified=%d stored=%d flagged=%d dead_lettered=%d reviews=%d %s",
            *outcome.counts(),
            " ".join(f"{k}_ms={v:.0f}" for k, v in outcome.timings_ms.items()),
        )
        state.progress.batch_committed(await _record_lag(message, state))

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
            spin_wait=settings.model.spin_wait,
            call_overhead_tokens=settings.model.call_overhead_tokens,
        )
        runner.warm_up()
        # py3langid loads its model on first use (about 0.4 s): here, not in the first
        # batch's latency.
        await asyncio.to_thread(detect_language, "warm up")
        state.metrics.model_loaded.labels(runner.model_version).set(1)
        if settings.database.auto_migrate:
            await asyncio.to_thread(upgrade, settings.database.url)
        # One clear line now, rather than batch after batch timing out on bad topics.
        state.quorum = await check_topics(settings.kafka)
        state.processor = BatchProcessor(
            settings=settings,
            runner=runner,
            store=ResultStore(
                make_engine(
                    settings.database.url,
                    echo=settings.database.echo,
                    connect_timeout_s=settings.database.connect_timeout_s,
                    statement_timeout_s=settings.database.statement_timeout_s,
                )
            ),
            publish=publish,
            retry=Retrier(
                state.stopping,
                state.metrics,
                attempt_timeout_s=settings.database.statement_timeout_s,
                retry_for_s=retry_for_s,
            ),
            metrics=state.metrics,
        )
        try:
            if problem := await asyncio.to_thread(state.processor.store.durability_problem):
                log.warning(
                    "the database may lose committed rows on power failure (%s): "
                    "at-least-once delivery is not guaranteed",
                    problem,
                )
        except Exception as exc:  # an unreachable database is the retries' business
            log.warning("could not check the database's durability: %s", describe(exc))
        log.info(
            "model %s loaded from %s (threshold %.3f; a call costs %.0f padded tokens)",
            runner.model_version,
            settings.model.bundle_path,
            state.processor.threshold,
            runner.call_overhead_tokens,
        )

    async def sweep_once(older_than_s: float) -> None:
        assert state.processor is not None
        try:
            swept = await asyncio.wait_for(
                state.processor.sweep_outbox(older_than_s=older_than_s),
                settings.service.outbox_sweep_interval_s + settings.database.statement_timeout_s,
            )
        except Exception as exc:  # the next sweep tries again; start-up goes on
            log.warning("outbox sweep failed, will retry: %s", describe(exc))
            return
        if swept:
            log.info("published %d review events left unpublished earlier", swept)

    async def sweep_periodically() -> None:
        interval = settings.service.outbox_sweep_interval_s
        while not state.stopping.is_set():
            await asyncio.sleep(interval)
            # Rows younger than the interval may belong to a batch about to publish them.
            await sweep_once(older_than_s=interval)

    async def sweep() -> None:
        await sweep_once(older_than_s=0.0)
        state.tasks.append(asyncio.create_task(sweep_periodically()))

    async def stop() -> None:
        state.stopping.set()
        for task in state.tasks:
            task.cancel()

    async def after_stop() -> None:
        if state.processor is not None:
            state.processor.store.engine.dispose()
        if state.fatal is not None:
            log.critical("stopped by a fatal error: %s", state.fatal)
            logging.shutdown()
            os._exit(FATAL_EXIT_CODE)

    async def broker_ok() -> bool:
        return bool(await broker.ping(timeout=2))

    async def kafka_write_quorum() -> bool:
        # acks=all writes need min.insync.replicas brokers: with fewer, batches wait.
        if state.quorum is not None:
            ok, why = await state.quorum.check()
            if not ok:
                raise Unready(why)
        return True

    async def database_ok() -> bool:
        return state.processor is not None and await asyncio.to_thread(state.processor.store.ping)

    async def model_ok() -> bool:
        return state.processor is not None and state.fatal is None

    async def progress_ok() -> bool:
        stalled = state.progress.stalled()
        state.metrics.stalled.set(1 if stalled else 0)
        return not stalled

    app = AsgiFastStream(
        broker,
        asgi_routes=[
            (
                "/health",
                make_health_handler(
                    {
                        "broker": broker_ok,
                        "database": database_ok,
                        "model": model_ok,
                        "progress": progress_ok,
                        "kafka_write_quorum": kafka_write_quorum,
                    }
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


async def _process(
    processor: BatchProcessor, records: tuple[Any, ...], state: ServiceState
) -> BatchOutcome:
    if state.attempts.exhausted(records):
        log.warning(
            "batch of %d failed %d times as a whole: processing its records one by one",
            len(records),
            state.attempts.limit,
        )
        return await processor.process_one_by_one(records)
    return await processor.process(records)


def _stop_fatally(state: ServiceState, reason: str) -> None:
    """Stop consuming (a graceful shutdown, offsets of this batch uncommitted), then exit 70."""
    if state.fatal is None:
        state.fatal = reason
        log.critical("fatal: %s; stopping the service", reason)
        os.kill(os.getpid(), signal.SIGTERM)


async def _record_lag(message: KafkaMessage, state: ServiceState) -> int:
    """Update the lag gauge (after failed batches too); returns the total lag seen."""
    metrics = state.metrics
    consumer = getattr(message, "consumer", None)
    if consumer is None or not hasattr(consumer, "assignment"):
        return 0
    total = 0
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = await consumer.position(tp)
        except Exception:  # a partition revoked mid-way has no position
            continue
        lag = max(0, highwater - position)
        total += lag
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)
    state.progress.lag_seen(total)
    return total


def create_app_from_env() -> AsgiFastStream:
    """Entry point for `faststream run services.classifier.app:create_app_from_env --factory`:
    settings from the environment, and logging set up as `depdetect serve` does."""
    from depdetect.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
