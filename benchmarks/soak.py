"""Soak: N messages over M minutes through the real service while faults are injected at
random, then a per-message ledger of what came out. Not a CI test; it stops by itself.

    nice .venv/bin/python benchmarks/soak.py --messages 3000 --minutes 5 [--nodes 1|3]
        [--bundle PATH] [--seed 0] [--fault-every 15:35]

It runs everything privately (nothing shared is touched): a Kafka broker or 3-node
cluster (deploy/kafka/kafka.sh) and a PostgreSQL cluster (deploy/postgres/postgres.sh)
on free ports in a temporary directory, and `depdetect serve` (store_unflagged=score,
so that every processed text leaves a row). Without --bundle a tiny bundle is trained
first (needs the training extra).

Faults, one at a time at random intervals while publishing: the service SIGKILLed and
restarted, a broker node SIGKILLed and restarted, the database stopped and restarted,
and a burst of poison records. Publishing pauses while the broker is down (the producer
is the test's, not the system under test).

Printed at the end: messages sent (valid, poison), result rows, review events, dead
letters, lost, duplicated rows, repeated review events and dead letters, faults by kind,
and the maximum stall (longest time with records outstanding and no new row). Exit
status 1 if anything was lost or a row duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depdetect.settings import KafkaSettings, Settings, StoreUnflagged  # noqa: E402
from schemas.messages import SubmittedText  # noqa: E402
from schemas.migrate import upgrade  # noqa: E402
from services.inference.runner import ModelRunner  # noqa: E402
from services.kafka.admin import ensure_topics  # noqa: E402
from tests.service.harness import ServiceProcess, free_port, malformed_payloads  # noqa: E402
from tests.service.texts import stream  # noqa: E402
from tests.support.kafka_cluster import KafkaCluster  # noqa: E402
from tests.support.ledger import Ledger  # noqa: E402

POSTGRES_SH = REPO / "deploy" / "postgres" / "postgres.sh"


@dataclass
class Postgres:
    state_dir: Path
    port: int = field(default_factory=free_port)

    def sh(self, *args: str) -> str:
        env = {
            **os.environ,
            "DEPDETECT_PG_STATE_DIR": str(self.state_dir),
            "DEPDETECT_PG_PORT": str(self.port),
        }
        done = subprocess.run(
            ["bash", str(POSTGRES_SH), *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"postgres.sh {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout.strip()


@dataclass
class Soak:
    settings: Settings
    kafka: KafkaCluster
    postgres: Postgres
    workdir: Path
    rng: random.Random
    ledger: Ledger = field(init=False)
    service: ServiceProcess | None = None
    faults: Counter[str] = field(default_factory=Counter)
    broker_up: asyncio.Event = field(default_factory=asyncio.Event)
    max_stall_s: float = 0.0
    restarts: int = 0

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.settings)
        self.broker_up.set()

    def start_service(self) -> None:
        self.restarts += 1
        log = self.workdir / f"service-{self.restarts}.log"
        self.service = ServiceProcess(self.settings, log).start(ready_timeout=180)

    # ------------------------------------------------------------------ load

    async def publish(self, n: int, minutes: float, poison_share: float) -> None:
        texts = stream(n, seed=self.rng.randrange(1 << 30))
        bad = list(malformed_payloads(self.settings.contract.max_text_chars))
        deadline_per_chunk = minutes * 60 / max(1, n / 20)
        sent = 0
        while sent < n:
            chunk: list[SubmittedText | tuple[bytes, bytes | None]] = []
            for lang, text in texts[sent : sent + 20]:
                if self.rng.random() < poison_share:
                    chunk.append((self.rng.choice(bad)[0], b"poison"))
                chunk.append(
                    SubmittedText(
                        message_id=f"soak-{sent + len(chunk)}-{self.rng.randrange(1 << 30)}",
                        text=text,
                        source="soak",
                        author_ref=f"author-{sent % 31}",
                        language=lang if sent % 2 else None,
                    )
                )
            started = time.monotonic()
            await self.broker_up.wait()
            await self.ledger.publish(chunk)
            sent += 20
            await asyncio.sleep(max(0.0, deadline_per_chunk - (time.monotonic() - started)))

    # ------------------------------------------------------------------ faults

    async def inject(self, until: float, every: tuple[float, float]) -> None:
        kinds = ["service_kill", "broker_restart", "database_restart", "poison_burst"]
        while True:
            await asyncio.sleep(self.rng.uniform(*every))
            if time.monotonic() > until:
                return
            kind = self.rng.choice(kinds)
            self.faults[kind] += 1
            print(f"[{time.strftime('%H:%M:%S')}] fault: {kind}", flush=True)
            try:
                await getattr(self, kind)()
            except Exception as exc:  # report and go on: the soak must end by itself
                self.faults[f"{kind}_failed"] += 1
                print(f"fault {kind} failed: {exc!r}"[:2000], flush=True)
                await self.heal()

    async def heal(self) -> None:
        """Bring everything back up after a fault that went wrong."""
        for node in range(1, self.kafka.nodes + 1):
            await asyncio.to_thread(self.kafka.restart, node)
        await asyncio.to_thread(self.kafka.wait)
        self.broker_up.set()
        await asyncio.to_thread(self.postgres.sh, "start")
        if (
            self.service is None
            or self.service.proc is None
            or self.service.proc.poll() is not None
        ):
            await asyncio.to_thread(self.start_service)

    async def service_kill(self) -> None:
        assert self.service is not None
        self.service.kill()
        await asyncio.sleep(self.rng.uniform(1, 5))
        await asyncio.to_thread(self.start_service)

    async def broker_restart(self) -> None:
        node = self.rng.randint(1, self.kafka.nodes)
        if self.kafka.nodes == 1:
            self.broker_up.clear()
        await asyncio.to_thread(self.kafka.kill, node)
        await asyncio.sleep(self.rng.uniform(3, 10))
        await asyncio.to_thread(self.kafka.restart, node)
        await asyncio.to_thread(self.kafka.wait)
        self.broker_up.set()

    async def database_restart(self) -> None:
        await asyncio.to_thread(self.postgres.sh, "stop")
        await asyncio.sleep(self.rng.uniform(3, 10))
        await asyncio.to_thread(self.postgres.sh, "start")

    async def poison_burst(self) -> None:
        await self.broker_up.wait()
        bad = list(malformed_payloads(self.settings.contract.max_text_chars))
        await self.ledger.publish([(p, b"burst") for p, _ in bad])

    # ------------------------------------------------------------------ watch

    async def watch(self, stop: asyncio.Event) -> None:
        """The longest time with valid records outstanding and the row count standing."""
        last_rows, since = -1, time.monotonic()
        while not stop.is_set():
            try:
                rows = await asyncio.to_thread(self.ledger.row_count)
            except Exception:  # the database is down: that time counts as stalled
                rows = last_rows
            now = time.monotonic()
            if rows != last_rows or rows >= len(self.ledger.valid_ids):
                last_rows, since = rows, now
            self.max_stall_s = max(self.max_stall_s, now - since)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="depdetect-soak-"))
    print(f"work dir {work}", flush=True)
    bundle = args.bundle or build_tiny_bundle(work / "bundle")
    kafka = KafkaCluster(work / "kafka", nodes=args.nodes)
    postgres = Postgres(work / "pg")
    await asyncio.to_thread(kafka.start)
    try:
        await asyncio.to_thread(postgres.sh, "start")
        url = postgres.sh("url")
        upgrade(url)
        tag = f"soak{rng.randrange(1 << 30):x}"
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            kafka=KafkaSettings(
                bootstrap_servers=kafka.bootstrap,
                input_topics=[f"{tag}.submitted"],
                review_topic=f"{tag}.review",
                dead_letter_topic=f"{tag}.dlq",
                decision_topic=f"{tag}.decisions",
                consumer_group=f"{tag}-group",
                batch_max_records=32,
            ),
            database={"url": url, "statement_timeout_s": 5.0},  # type: ignore[arg-type]
            model={"bundle_path": bundle, "threshold": median_score(bundle)},  # type: ignore[arg-type]
            storage={"store_unflagged": StoreUnflagged.SCORE},  # type: ignore[arg-type]
            contract={"max_text_chars": 300},  # type: ignore[arg-type]
        )
        await ensure_topics(settings.kafka)
        soak = Soak(settings, kafka, postgres, work, rng)
        await asyncio.to_thread(soak.start_service)
        stop_watch = asyncio.Event()
        watcher = asyncio.create_task(soak.watch(stop_watch))
        started = time.monotonic()
        until = started + args.minutes * 60
        lo, hi = (float(x) for x in args.fault_every.split(":"))
        injector = asyncio.create_task(soak.inject(until, (lo, hi)))
        await soak.publish(args.messages, args.minutes, poison_share=0.02)
        await injector  # faults stop at the deadline; the last one completes
        soak.broker_up.set()
        report = await soak.ledger.settle(timeout=args.settle_s)
        stop_watch.set()
        await watcher
        elapsed = time.monotonic() - started
        assert soak.service is not None
        soak.service.terminate()
    finally:
        kafka.stop()
        with contextlib.suppress(Exception):
            postgres.sh("stop")

    figures = {
        "messages_sent": report.sent,
        "valid": report.valid,
        "poison": report.poison,
        "rows": report.rows,
        "flagged": report.flagged,
        "review_events": report.reviews,
        "dead_letters": report.dead_letters,
        "lost": len(report.lost),
        "duplicated_rows": len(report.duplicated_rows),
        "repeated_review_events": report.duplicate_reviews,
        "repeated_dead_letters": report.duplicate_dead_letters,
        "flags_without_review": len(report.unreviewed_flags),
        "poison_without_dead_letter": len(report.missing_dead_letters),
        "faults": dict(soak.faults),
        "faults_total": sum(soak.faults.values()),
        "max_stall_s": round(soak.max_stall_s, 1),
        "elapsed_s": round(elapsed, 1),
        "brokers": args.nodes,
    }
    print(json.dumps(figures, indent=2))
    problems = report.problems(max_duplicate_reviews=10**9, max_duplicate_dead_letters=10**9)
    for problem in problems:
        print("PROBLEM:", problem)
    return 1 if problems else 0


def build_tiny_bundle(out: Path) -> Path:
    """`depdetect train tiny` in its own process: the soak's service never imports torch."""
    depdetect = str(Path(sys.executable).parent / "depdetect")
    subprocess.run(
        [depdetect, "train", "tiny", str(out)],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return out


def median_score(bundle: Path) -> float:
    """A threshold that flags about half of the soak's texts (delivery, not accuracy)."""
    scores = sorted(
        s.score for s in ModelRunner.from_bundle(bundle).score([t for _, t in stream(300)])
    )
    return scores[len(scores) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault-every", default="15:35", help="seconds between faults, lo:hi")
    parser.add_argument("--settle-s", type=float, default=300.0)
    args = parser.parse_args()
    # Bounded whatever happens: publishing, the last fault, settling, and a margin.
    budget = args.minutes * 60 + args.settle_s + 600
    sys.exit(asyncio.run(asyncio.wait_for(run(args), budget)))


if __name__ == "__main__":
    main()
