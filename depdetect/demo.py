"""The quickstart's main job: the streaming pipeline end to end on the embedded defaults.

A model bundle (reused, or trained on the repo's small sample), the topics, the
database schema, the classifier service as a child process, a stream of sample texts
in six languages plus a few malformed records, and a summary of what happened.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from depdetect.settings import ENV_PREFIX, REPO_ROOT, Settings
from schemas.bundle import read_manifest
from schemas.errors import BundleError, DepdetectError

DEMO_STREAM = REPO_ROOT / "deploy" / "demo" / "stream.jsonl"
DEMO_BUNDLE = REPO_ROOT / "var" / "demo" / "bundle"
#: Records that break the contract, to show the dead-letter topic at work.
MALFORMED: list[tuple[bytes, str]] = [
    (b"\xff\xfe not UTF-8 at all", "bytes that are not UTF-8"),
    (b'{"message_id": "broken", "text": ', "truncated JSON"),
    (json.dumps({"message_id": "empty-text", "text": "  "}).encode(), "an empty text"),
]


class DemoError(DepdetectError):
    """The demo could not run; the message says what to do."""


@dataclass
class DemoRun:
    run_id: str
    published: int
    malformed: int


def ensure_bundle(settings: Settings, console: Console, *, offline: bool) -> Path:
    """The configured bundle, else the demo bundle from an earlier run, else a new one."""
    candidates = [p for p in (settings.model.bundle_path, DEMO_BUNDLE) if p is not None]
    for path in candidates:
        try:
            manifest = read_manifest(path)
        except BundleError as exc:
            if path == settings.model.bundle_path:
                raise DemoError(str(exc)) from exc
            continue
        console.print(f"model bundle: [bold]{path}[/] ({manifest.model_version}, reused)")
        return Path(path)
    console.print(
        "no model bundle yet: training one on the repo's sample "
        f"({'offline multilingual-e5-small' if offline else 'hub encoder'}), "
        "a few minutes on CPU …"
    )
    try:
        from training.pipeline import build_demo_bundle
    except ImportError as exc:  # the serving install has no torch
        raise DemoError(
            "training needs the training extra: run `deploy/setup-python.sh` "
            "or point DEPDETECT_MODEL__BUNDLE_PATH at a bundle"
        ) from exc
    started = time.monotonic()
    build_demo_bundle(DEMO_BUNDLE, offline=offline, data=settings.data.sample_dir / "sample.csv")
    console.print(f"trained in {time.monotonic() - started:.0f} s: [bold]{DEMO_BUNDLE}[/]")
    return DEMO_BUNDLE


def _child_env(settings: Settings, bundle: Path) -> dict[str, str]:
    """The service child builds exactly the demo's settings, with the chosen bundle."""
    child = settings.model_copy(
        update={"model": settings.model.model_copy(update={"bundle_path": bundle})}
    )
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**inherited, **child.to_env(), "PYTHONUNBUFFERED": "1"}


def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the service exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise DemoError(f"the service was not ready after {timeout:.0f} s; see {log}")


async def _publish(settings: Settings, run_id: str) -> DemoRun:
    from aiokafka import AIOKafkaProducer

    from schemas.messages import SubmittedText
    from services.publisher.client import TextPublisher

    rows = [json.loads(line) for line in DEMO_STREAM.read_text(encoding="utf-8").splitlines()]
    messages = [SubmittedText(message_id=f"demo-{run_id}-{i}", **row) for i, row in enumerate(rows)]
    async with TextPublisher(settings.kafka) as pub:
        async for _ in pub.publish_many(messages):
            pass
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for n, (payload, _) in enumerate(MALFORMED):
            await producer.send_and_wait(
                settings.kafka.input_topics[0], payload, key=f"demo-{run_id}-bad-{n}".encode()
            )
    finally:
        await producer.stop()
    return DemoRun(run_id, len(messages), len(MALFORMED))


@dataclass
class StreamCounts:
    """What the stream did with one demo run, read once it has drained.

    Every figure comes from a source that is final once the consumer group's committed
    offsets reach the end of what was published: offsets (what was consumed), the
    dead-letter topic, the database and the review topic. A figure that could not be
    read is a string saying why, never a silent 0.
    """

    consumed: int | str
    dead_letter_reasons: list[str] | str
    flagged_by_language: Counter[str] | str
    reviews: list[dict[str, Any]] | str

    @property
    def classified(self) -> int | str:
        if isinstance(self.consumed, str):
            return self.consumed
        if isinstance(self.dead_letter_reasons, str):
            return f"unknown: {self.dead_letter_reasons}"
        return self.consumed - len(self.dead_letter_reasons)


def _readable(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as exc:  # shown in the summary instead of a made-up 0
        return f"could not be read ({type(exc).__name__}: {exc})"


async def _wait_drained(
    settings: Settings, published_to: dict[int, int], proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the service has committed every offset up to what this run published."""
    from services.kafka.reading import committed_offsets

    kafka = settings.kafka
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"the service exited ({proc.returncode}); see {log}")
        committed = await committed_offsets(
            kafka.bootstrap_servers, kafka.consumer_group, kafka.input_topics[0]
        )
        if all(committed.get(p, 0) >= end for p, end in published_to.items()):
            return
        await asyncio.sleep(0.5)
    raise DemoError(f"the service did not consume the stream in time; see {log}")


async def _review_events(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    from services.kafka.reading import read_topic

    records = await read_topic(settings.kafka.bootstrap_servers, settings.kafka.review_topic)
    events = [json.loads(r.value) for r in records]
    return [e for e in events if e["message_id"].startswith(f"demo-{run_id}-")]


async def _dead_letter_reasons(
    settings: Settings, before: dict[int, int], after: dict[int, int]
) -> list[str]:
    """Reasons of the dead letters whose source record this run published."""
    from services.kafka.reading import read_topic

    topic = settings.kafka.input_topics[0]
    records = await read_topic(settings.kafka.bootstrap_servers, settings.kafka.dead_letter_topic)
    by_source: dict[tuple[int, int], str] = {}
    for record in records:
        letter = json.loads(record.value)
        partition, offset = letter["source_partition"], letter["source_offset"]
        if letter["source_topic"] == topic and before.get(partition, 0) <= offset < after.get(
            partition, 0
        ):
            by_source[(partition, offset)] = letter["reason"]  # a replayed one counts once
    return list(by_source.values())


def _flagged_by_language(settings: Settings, run_id: str) -> Counter[str]:
    from sqlalchemy import create_engine, select

    from schemas.tables import ResultRow

    engine = create_engine(settings.database.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(ResultRow.language).where(
                    ResultRow.message_id.like(f"demo-{run_id}-%"), ResultRow.flagged.is_(True)
                )
            ).all()
    finally:
        engine.dispose()
    return Counter(lang or "unknown" for (lang,) in rows)


def _stream_counts(
    settings: Settings, run: DemoRun, before: dict[int, int], after: dict[int, int]
) -> StreamCounts:
    return StreamCounts(
        consumed=sum(end - before.get(p, 0) for p, end in after.items()),
        dead_letter_reasons=_readable(
            lambda: asyncio.run(_dead_letter_reasons(settings, before, after))
        ),
        flagged_by_language=_readable(lambda: _flagged_by_language(settings, run.run_id)),
        reviews=_readable(lambda: asyncio.run(_review_events(settings, run.run_id))),
    )


def _count(value: Sized | str) -> str:
    return value if isinstance(value, str) else str(len(value))


def _summary(
    settings: Settings, run: DemoRun, counts: StreamCounts, console: Console, elapsed: float
) -> None:
    flagged = counts.flagged_by_language
    reviews = counts.reviews
    table = Table(title=f"demo run {run.run_id}: what happened", show_header=False)
    table.add_row("texts published", str(run.published))
    table.add_row("malformed records published", str(run.malformed))
    table.add_row("texts classified", str(counts.classified))
    table.add_row(
        "flagged for review", flagged if isinstance(flagged, str) else str(flagged.total())
    )
    if not isinstance(flagged, str):
        table.add_row("  by language", ", ".join(f"{k} {v}" for k, v in sorted(flagged.items())))
    table.add_row("dead-lettered (with reason)", _count(counts.dead_letter_reasons))
    table.add_row(
        "review events on the broker",
        reviews if isinstance(reviews, str) else str(len({e["message_id"] for e in reviews})),
    )
    table.add_row("time", f"{elapsed:.1f} s")
    console.print(table)
    if not isinstance(counts.dead_letter_reasons, str):
        for reason in counts.dead_letter_reasons:
            console.print(f"  dead letter: {reason}", markup=False)
    for event in [] if isinstance(reviews, str) else reviews[:3]:
        text = (event.get("text") or "")[:90]
        console.print(
            f"  review event: score {event['score']:.2f} [{event['language']}] "
            f"{text!r} -> {event['result_url']}",
            markup=False,
        )
    console.print(
        f"\nresults are in [bold]{settings.database.url}[/] (`depdetect results list --flagged`);\n"
        f"review events on [bold]{settings.kafka.review_topic}[/], dead letters on "
        f"[bold]{settings.kafka.dead_letter_topic}[/] at {settings.kafka.bootstrap_servers}.\n"
        "Every flag is a prompt for a person to look, never a diagnosis."
    )


def run_demo(settings: Settings, *, offline: bool = True, port: int = 8091) -> None:
    from schemas.migrate import upgrade
    from services.kafka.admin import ensure_topics

    console = Console()
    started = time.monotonic()
    bundle = ensure_bundle(settings, console, offline=offline)
    upgrade(settings.database.url)
    created = asyncio.run(ensure_topics(settings.kafka))
    console.print(f"topics: {', '.join(created) + ' created' if created else 'all present'}")

    log = REPO_ROOT / "var" / "demo" / "service.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "depdetect"), "serve", "--port", str(port)],
            env=_child_env(settings, bundle),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, port, 120, log)
        console.print(f"classifier service running (pid {proc.pid}, log {log})")
        from services.kafka.reading import end_offsets

        bootstrap, topic = settings.kafka.bootstrap_servers, settings.kafka.input_topics[0]
        before = asyncio.run(end_offsets(bootstrap, topic))
        run = asyncio.run(_publish(settings, uuid.uuid4().hex[:6]))
        console.print(
            f"published {run.published} texts in six languages + {run.malformed} malformed"
        )
        after = asyncio.run(end_offsets(bootstrap, topic))
        asyncio.run(_wait_drained(settings, after, proc, log))
        counts = _stream_counts(settings, run, before, after)
        _summary(settings, run, counts, console, time.monotonic() - started)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(45)
            except subprocess.TimeoutExpired:
                proc.kill()
