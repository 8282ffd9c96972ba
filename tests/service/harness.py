"""Run the real classifier service as a separate process, and read what it produced."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import ColumnElement, create_engine, select

from depdetect.settings import Settings
from schemas.tables import ResultRow
from services.classifier.metrics import scrape_totals
from services.kafka.reading import read_topic as read_records

DEPDETECT = str(Path(sys.executable).parent / "depdetect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    settings: Settings
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_timeout: float = 90.0) -> ServiceProcess:
        # Exactly these settings: no DEPDETECT_* of the test's own environment leaks in.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DEPDETECT_")}
        env = {**inherited, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [DEPDETECT, "serve", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            if self.health()[0] == 200:
                return self
            time.sleep(0.3)
        self.proc.kill()  # never leave a half-started service behind
        self.proc.wait(10)
        raise AssertionError(f"service not ready after {ready_timeout}s:\n{self.log()}")

    def health(self) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=3) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return 0, {}

    def metric(self, name: str) -> float:
        return scrape_totals(f"http://127.0.0.1:{self.port}/metrics").get(name, 0.0)

    def wait_exit(self, timeout: float) -> int:
        """The exit status once the process ends by itself (a crash point, a fatal error)."""
        assert self.proc is not None
        try:
            return int(self.proc.wait(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s:\n{self.log()}") from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 45.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def stored_ids(url: str, *where: ColumnElement[bool]) -> list[str]:
    """The message ids of the stored results (matching ``where``), repeats included; read
    through an engine of the test's own."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(ResultRow.message_id).where(*where)).scalars())
    finally:
        engine.dispose()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout: float = 30.0,
    idle: float = 3.0,
) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """(key, value, headers) of every record, from the beginning."""
    records = await read_records(bootstrap, topic, expect=expect, timeout_s=timeout, idle_s=idle)
    return [(r.key, r.value, dict(r.headers)) for r in records]


async def one_batch_backlog(settings: Settings, prefix: str, n: int, *, wait_ms: int) -> list[str]:
    """The service set to take a backlog in one batch (up to 500 records, waiting up to
    ``wait_ms`` for them), its topics created and ``n`` texts sent round-robin."""
    from services.kafka.admin import ensure_topics

    settings.kafka.batch_max_records = 500
    settings.kafka.batch_max_wait_ms = wait_ms
    await ensure_topics(settings.kafka)
    return await publish_round_robin(settings, prefix, n)


async def publish_round_robin(settings: Settings, prefix: str, n: int) -> list[str]:
    """``n`` texts ``{prefix}{i}`` sent to the input topic's partitions in turn (3 of them,
    as the test topics have), each confirmed; returns their message ids."""
    from aiokafka import AIOKafkaProducer

    from schemas.messages import SubmittedText

    topic = settings.kafka.input_topics[0]
    sent: list[str] = []
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(n):
            msg = SubmittedText(message_id=f"{prefix}{i}", text=f"text number {i}", source="t")
            await producer.send_and_wait(topic, msg.model_dump_json().encode(), partition=i % 3)
            sent.append(msg.message_id)
    finally:
        await producer.stop()
    return sent


async def wait_for(predicate, *, timeout: float, interval: float = 0.5, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def malformed_payloads(max_chars: int) -> Iterable[tuple[bytes, str]]:
    """(payload, fragment of the expected reason) for each kind of bad input."""
    yield b"\xff\xfe\x00not utf-8", "not valid UTF-8"
    yield b"{this is not json", "not valid JSON"
    yield json.dumps({"message_id": "x1", "text": "   "}).encode(), "text is empty"
    yield (
        json.dumps({"message_id": "x2", "text": "y" * (max_chars + 1)}).encode(),
        "more than the maximum",
    )
    yield (
        json.dumps({"message_id": "x3", "text": "ok", "schema_version": 99}).encode(),
        "unsupported schema_version",
    )
    yield json.dumps({"text": "no id"}).encode(), "message_id: Field required"
    yield json.dumps([1, 2, 3]).encode(), "JSON object"
