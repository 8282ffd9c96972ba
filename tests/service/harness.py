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

from depdetect.settings import Settings
from services.classifier.metrics import scrape_totals
from services.kafka.reading import read_topic as read_records

DEPDETECT = str(Path(sys.executable).parent / "depdetect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build exactly these settings."""
    k = settings.kafka
    env = {
        "DEPDETECT_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
        "DEPDETECT_KAFKA__INPUT_TOPICS": ",".join(k.input_topics),
        "DEPDETECT_KAFKA__REVIEW_TOPIC": k.review_topic,
        "DEPDETECT_KAFKA__DEAD_LETTER_TOPIC": k.dead_letter_topic,
        "DEPDETECT_KAFKA__DECISION_TOPIC": k.decision_topic,
        "DEPDETECT_KAFKA__CONSUMER_GROUP": k.consumer_group,
        "DEPDETECT_KAFKA__BATCH_MAX_RECORDS": str(k.batch_max_records),
        "DEPDETECT_KAFKA__BATCH_MAX_WAIT_MS": str(k.batch_max_wait_ms),
        "DEPDETECT_MODEL__INFERENCE_BATCH_SIZE": str(settings.model.inference_batch_size),
        "DEPDETECT_MODEL__INTRA_OP_THREADS": str(settings.model.intra_op_threads),
        "DEPDETECT_DATABASE__URL": settings.database.url,
        "DEPDETECT_STORAGE__STORE_UNFLAGGED": settings.storage.store_unflagged.value,
        "DEPDETECT_CONTRACT__MAX_TEXT_CHARS": str(settings.contract.max_text_chars),
        "DEPDETECT_LOG_LEVEL": "INFO",
        "DEPDETECT_LOG_FORMAT": settings.log_format,
    }
    if settings.model.bundle_path:
        env["DEPDETECT_MODEL__BUNDLE_PATH"] = str(settings.model.bundle_path)
    if settings.model.threshold is not None:
        env["DEPDETECT_MODEL__THRESHOLD"] = repr(settings.model.threshold)
    return env


@dataclass
class ServiceProcess:
    settings: Settings
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *, ready_timeout: float = 90.0) -> ServiceProcess:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
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
