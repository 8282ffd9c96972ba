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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from depdetect.settings import REPO_ROOT, Settings
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
    return {
        **os.environ,
        "DEPDETECT_MODEL__BUNDLE_PATH": str(bundle),
        "DEPDETECT_DATABASE__URL": settings.database.url,
        "DEPDETECT_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "PYTHONUNBUFFERED": "1",
    }


def _metrics(port: int) -> dict[str, float]:
    from services.classifier.metrics import scrape_totals

    return scrape_totals(f"http://127.0.0.1:{port}/metrics")


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


async def _review_events(settings: Settings, run_id: str) -> list[dict[str, Any]]:
    from services.kafka.reading import read_topic

    records = await read_topic(settings.kafka.bootstrap_servers, settings.kafka.review_topic)
    events = [json.loads(r.value) for r in records]
    return [e for e in events if e["message_id"].startswith(f"demo-{run_id}-")]


async def _dead_letter_reasons(settings: Settings, run_id: str) -> list[str]:
    from services.kafka.reading import read_topic

    records = await read_topic(settings.kafka.bootstrap_servers, settings.kafka.dead_letter_topic)
    mine = f"demo-{run_id}-bad-".encode()
    return [json.loads(r.value)["reason"] for r in records if (r.key or b"").startswith(mine)]


def _summary(
    settings: Settings,
    run: DemoRun,
    metrics: dict[str, float],
    reviews: list[dict[str, Any]],
    reasons: list[str],
    console: Console,
    elapsed: float,
) -> None:
    from sqlalchemy import create_engine, select

    from schemas.tables import ResultRow

    engine = create_engine(settings.database.url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(ResultRow.language, ResultRow.flagged).where(
                ResultRow.message_id.like(f"demo-{run.run_id}-%")
            )
        ).all()
    engine.dispose()
    flagged_by_lang = Counter(lang for lang, flagged in rows if flagged)
    classified = int(metrics.get("depdetect_classified_total", 0))
    table = Table(title=f"demo run {run.run_id}: what happened", show_header=False)
    table.add_row("texts published", str(run.published))
    table.add_row("malformed records published", str(run.malformed))
    table.add_row("texts classified", str(classified))
    table.add_row("flagged for review", str(sum(flagged_by_lang.values())))
    table.add_row(
        "  by language", ", ".join(f"{k} {v}" for k, v in sorted(flagged_by_lang.items()))
    )
    table.add_row(
        "dead-lettered (with reason)", str(int(metrics.get("depdetect_dead_lettered_total", 0)))
    )
    table.add_row("review events on the broker", str(len(reviews)))
    table.add_row("time", f"{elapsed:.1f} s")
    console.print(table)
    for reason in reasons:
        console.print(f"  dead letter: {reason}", markup=False)
    for event in reviews[:3]:
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
        before = _metrics(port)
        run = asyncio.run(_publish(settings, uuid.uuid4().hex[:6]))
        console.print(
            f"published {run.published} texts in six languages + {run.malformed} malformed"
        )
        expected = run.published + run.malformed
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            now = _metrics(port)
            if (
                now.get("depdetect_consumed_total", 0) - before.get("depdetect_consumed_total", 0)
                >= expected
            ):
                break
            time.sleep(0.5)
        else:
            raise DemoError(f"the service did not consume the stream in time; see {log}")
        after = _metrics(port)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        reviews = asyncio.run(_review_events(settings, run.run_id))
        reasons = asyncio.run(_dead_letter_reasons(settings, run.run_id))
        _summary(settings, run, delta, reviews, reasons, console, time.monotonic() - started)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(45)
            except subprocess.TimeoutExpired:
                proc.kill()
