"""Benchmark: the bundle's raw throughput against the service's, with 1 and 2 members.

    .venv/bin/python benchmarks/bench_service.py --bundle PATH [--n 3000] [--members 1,2] \
        [--database-url postgresql://...]

Needs a running broker (`depdetect broker start`); several members want PostgreSQL
(SQLite has one writer). Prints, in one run on one machine:
1. raw texts/s of the bundle at each batch size, on every core this process may use
   (no Kafka, no database): the median of three passes taken in turn across the sizes;
2. for each member count (service processes in one consumer group on one topic of
   ``--partitions`` partitions, the cores split between them):
   - drain: N texts published first, then consumed with the broker otherwise idle
     ("quiet"): texts/s from the first result row after the consumer group has formed
     (every member joined, the rebalance done) to the last (that first batch's rows,
     stamped at the span's start, not counted);
   - live: N texts published as fast as the producer goes while the service consumes:
     texts/s from the first send to the last row (the producer, batching its sends,
     is done within a second or two: this is mostly a backlog being consumed);
   - loaded: N texts sent one by one at a steady ``--load`` times the raw rate, more
     than the service can take, as many clients of a platform would: the broker takes
     every send as its own request, so broker, producer and service share the cores
     for the whole phase ("under load"): texts/s from the first send to the last row;
   - p50 / p99 publish -> result-row latency at a steady half of the live rate;
   - where the batches' time went (model / write / publish, summed over the drain's
     batches from the service's batch log; "batch" is their wall time, less than the
     sum by what the stripes overlapped);
   - whose CPU filled the cores in each phase (the service's processes, the broker,
     the database, this benchmark, the rest), in cores kept busy on average;
3. the ratios drain / raw, live / raw and loaded / raw.
Every text makes a row (store_unflagged=score). A plot of the latency distributions is
saved next to the printed figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, delete, func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.cpu_shares import CpuReading, cores_used, format_cores, read_cpu  # noqa: E402
from depdetect.settings import KafkaSettings, Settings, StoreUnflagged, load_settings  # noqa: E402
from schemas.messages import SubmittedText  # noqa: E402
from schemas.migrate import upgrade  # noqa: E402
from schemas.tables import ResultRow  # noqa: E402
from services.inference.runner import ModelRunner, usable_cores  # noqa: E402
from services.kafka.admin import (  # noqa: E402
    admin_client,
    ensure_topics,
    group_state,
    project_topics,
)
from services.publisher.client import TextPublisher  # noqa: E402
from tests.service.harness import ServiceProcess  # noqa: E402

BATCH_LINE = re.compile(r"batch consumed=(\d+).*? model_ms=(\d+) write_ms=(\d+) publish_ms=(\d+)")
BATCH_WALL = re.compile(r"batch_ms=(\d+)")
#: Passes per batch size for the raw figure (after one untimed warm-up pass).
RAW_ROUNDS = 3


def load_texts(path: Path, n: int, seed: int = 0) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        sep = "|" if "|" in fh.readline() else ","
        fh.seek(0)
        texts = [row["text"] for row in csv.DictReader(fh, delimiter=sep) if row.get("text")]
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]


def raw_throughput(
    bundle: Path, texts: list[str], threads: int, rounds: int = RAW_ROUNDS
) -> dict[int, float]:
    """Texts/s at each batch size: the median of ``rounds`` passes taken in turn across
    the sizes, so that neither this machine's drift nor the luck of a single pass picks
    the best size."""
    runners = {
        batch: ModelRunner.from_bundle(bundle, micro_batch_size=batch, intra_op_threads=threads)
        for batch in (1, 8, 16, 32, 64)
    }
    passes: dict[int, list[float]] = {batch: [] for batch in runners}
    for round_ in range(rounds + 1):
        for batch, runner in runners.items():
            sample = texts[: 300 if batch == 1 else 1500]
            started = time.perf_counter()
            for i in range(0, len(sample), 512):
                runner.score(sample[i : i + 512])
            # Round 0 is a warm-up: the first pass allocates a buffer per new shape.
            if round_:
                passes[batch].append(len(sample) / (time.perf_counter() - started))
    out = {batch: statistics.median(rates) for batch, rates in passes.items()}
    for batch, rates in passes.items():
        print(
            f"  raw  batch {batch:>3}: {out[batch]:8.1f} texts/s "
            f"(median of {rounds}, {min(rates):.1f}-{max(rates):.1f})",
            flush=True,
        )
    runner = runners[64]
    print(
        f"  runs are cut where padding costs more than a call, taken as "
        f"{runner.call_overhead_tokens:.0f} positions; measured here: "
        f"{runner.measure_call_overhead():.0f} (DEPDETECT_MODEL__CALL_OVERHEAD_TOKENS)",
        flush=True,
    )
    return out


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Rows:
    url: str

    def __post_init__(self) -> None:
        self.engine = create_engine(self.url)

    def count(self, prefix: str) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).where(ResultRow.message_id.like(f"{prefix}%"))
            return int(conn.execute(query).scalar_one())

    def span(self, prefix: str) -> tuple[datetime, datetime]:
        """First and last classified_at of the rows with ``prefix``."""
        with self.engine.connect() as conn:
            first, last = conn.execute(
                select(func.min(ResultRow.classified_at), func.max(ResultRow.classified_at)).where(
                    ResultRow.message_id.like(f"{prefix}%")
                )
            ).one()
        return _utc(first), _utc(last)

    def drain_rate(self, prefix: str, since: datetime) -> float:
        """Texts/s from the first result row stamped after ``since`` (the group formed) to
        the last, counting only the rows stamped after that first one: a batch's rows
        share one stamp, taken when its scoring ended, so the first batch's texts were
        scored before the span began (counting them would flatter large batches). NaN when
        fewer than two batches' rows come after ``since`` (too small a backlog)."""
        mine = ResultRow.message_id.like(f"{prefix}%")
        with self.engine.connect() as conn:
            first, last = conn.execute(
                select(func.min(ResultRow.classified_at), func.max(ResultRow.classified_at)).where(
                    mine, ResultRow.classified_at > since
                )
            ).one()
            if first is None or first == last:
                return float("nan")
            first, last = _utc(first), _utc(last)
            after = conn.execute(
                select(func.count()).where(mine, ResultRow.classified_at > first)
            ).scalar_one()
        return int(after) / max(1e-6, (last - first).total_seconds())

    def latencies(self, prefix: str) -> list[float]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ResultRow.submitted_at, ResultRow.classified_at).where(
                    ResultRow.message_id.like(f"{prefix}%")
                )
            ).all()
        return sorted((_utc(c) - _utc(s)).total_seconds() for s, c in rows)

    def count_before(self, prefix: str, moment: datetime) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).where(
                ResultRow.message_id.like(f"{prefix}%"), ResultRow.classified_at <= moment
            )
            return int(conn.execute(query).scalar_one())

    def remove(self, prefix: str) -> None:
        """Delete the run's rows: a database that keeps them grows by 9,000 a run, and
        its autovacuum came to run inside later runs' timings."""
        with self.engine.begin() as conn:
            conn.execute(delete(ResultRow).where(ResultRow.message_id.like(f"{prefix}%")))

    def wait(self, prefix: str, n: int, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while self.count(prefix) < n:
            if time.perf_counter() > deadline:
                raise SystemExit(f"timed out: {self.count(prefix)}/{n} rows for {prefix}")
            time.sleep(0.2)


async def group_formed(kafka: KafkaSettings, members: int, timeout_s: float) -> datetime:
    """When the consumer group is stable with all ``members``: the drain is measured from
    then, since until every member has joined, one member scores alone and a rebalance
    waits for its batch in flight (start-up, not throughput)."""
    deadline = time.monotonic() + timeout_s
    async with admin_client(kafka) as admin:
        while time.monotonic() < deadline:
            state, count = await group_state(admin, kafka.consumer_group)
            if state == "Stable" and count == members:
                return datetime.now(UTC)
            await asyncio.sleep(0.1)
    raise TimeoutError(f"group {kafka.consumer_group} not stable with {members} members")


async def remove_topics(kafka: KafkaSettings) -> None:
    """Delete the run's own topics (input, review, dead letters; never the shared decision
    topic): a broker that keeps them gains three topics of 3,000+ records a run."""
    async with admin_client(kafka) as admin:
        await admin.delete_topics([t for t in project_topics(kafka) if t != kafka.decision_topic])


async def publish(
    kafka: KafkaSettings,
    texts: list[str],
    prefix: str,
    rate: float | None,
    *,
    wait_each: bool = True,
) -> float:
    """Publish ``texts`` as fast as the producer goes, or at a steady ``rate`` (each send
    awaited before the next, or with ``wait_each`` off, sent at its time without waiting
    for the one before: many clients' sends); created_at is stamped at the send, so
    classified_at - submitted_at is publish -> row latency. Returns the sends per second
    achieved."""
    start = time.perf_counter()
    async with TextPublisher(kafka) as pub:
        if rate is None:
            msgs = [SubmittedText(message_id=f"{prefix}{i}", text=t) for i, t in enumerate(texts)]
            async for _ in pub.publish_many(msgs, window=1000):
                pass
            return len(texts) / (time.perf_counter() - start)
        interval = 1.0 / rate
        start = time.perf_counter()
        acks = []
        for i, t in enumerate(texts):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            msg = SubmittedText(message_id=f"{prefix}{i}", text=t)  # stamped now, at its send
            if wait_each:
                await pub.publish(msg)
            else:
                acks.append(asyncio.ensure_future(pub.publish(msg)))
        # n sends at a steady rate span n - 1 intervals.
        sent = max(1, len(texts) - 1) / max(1e-6, time.perf_counter() - start)
        await asyncio.gather(*acks)
        return sent


def breakdown(logs: list[Path], offsets: list[int]) -> str:
    """Model / write / publish / batch ms summed over the batch lines written since
    ``offsets`` (one per member's log)."""
    totals = [0, 0, 0, 0, 0]
    for log, offset in zip(logs, offsets, strict=True):
        with log.open("rb") as fh:
            fh.seek(offset)
            for line in fh.read().decode("utf-8", "replace").splitlines():
                if m := BATCH_LINE.search(line):
                    found = BATCH_WALL.search(line)
                    values = [int(g) for g in m.groups()] + [int(found.group(1)) if found else 0]
                    totals = [a + b for a, b in zip(totals, values, strict=True)]
    texts, model, write, pub, wall = totals
    if not texts:
        return "no batch lines"
    return (
        f"{texts} texts: model {model / 1000:.1f} s, write {write / 1000:.1f} s, "
        f"publish {pub / 1000:.1f} s, batches' wall time {wall / 1000:.1f} s "
        f"({(model + write + pub - wall) / 1000:.1f} s overlapped)"
    )


def print_cores(since: CpuReading, service_pids: list[int]) -> CpuReading:
    """Print whose CPU filled the cores since ``since``; the reading taken now."""
    now = read_cpu(service_pids)
    print(f"    {format_cores(cores_used(since, now), usable_cores())}", flush=True)
    return now


@dataclass
class MemberFigures:
    members: int
    threads: int
    drain: float
    live: float
    loaded: float
    p50: float
    p99: float
    latencies: list[float]


def run_members(
    members: int,
    args: argparse.Namespace,
    base: Settings,
    texts: list[str],
    rows: Rows,
    raw: float,
) -> MemberFigures:
    run = uuid.uuid4().hex[:8]
    threads = max(1, usable_cores() // members)
    kafka = base.kafka.model_copy(
        update={
            "input_topics": [f"bench-{run}.in"],
            "review_topic": f"bench-{run}.review",
            "dead_letter_topic": f"bench-{run}.dlq",
            "consumer_group": f"bench-{run}",
            "partitions": args.partitions,
            "batch_max_records": args.batch_records,
        }
    )
    asyncio.run(ensure_topics(kafka))
    settings = Settings(
        kafka=kafka,
        database={"url": rows.url},
        model={
            "bundle_path": args.bundle,
            "inference_batch_size": args.batch,
            "stripe_size": args.stripe,
            "intra_op_threads": threads,
        },
        storage={"store_unflagged": StoreUnflagged.SCORE},
    )
    print(
        f"== {members} member(s), {threads} thread(s) each, {args.partitions} partitions, "
        f"batches of up to {args.batch_records}, "
        f"stripes of {args.stripe or 'the whole batch'}, ORT runs of {args.batch}"
    )
    asyncio.run(publish(kafka, texts, f"{run}-d-", None))  # the backlog, before any member
    logs = [Path(tempfile.mkdtemp()) / f"service-{i}.log" for i in range(members)]
    services = [ServiceProcess(settings, log).start() for log in logs]
    pids = [s.proc.pid for s in services if s.proc is not None]
    try:
        launched = datetime.now(UTC)
        formed = asyncio.run(group_formed(kafka, members, 300))
        cpu = read_cpu(pids)
        rows.wait(f"{run}-d-", len(texts), 1800)
        drain = rows.drain_rate(f"{run}-d-", formed)
        too_small = "; too small a backlog to time: raise --n" if math.isnan(drain) else ""
        print(
            f"  drain (quiet): {drain:8.1f} texts/s (from the group's forming, "
            f"{(formed - launched).total_seconds():.1f} s after launch: "
            f"{rows.count_before(f'{run}-d-', formed)} texts scored before it{too_small})",
            flush=True,
        )
        print(f"    {breakdown(logs, [0] * members)}", flush=True)
        cpu = print_cores(cpu, pids)

        offsets = [log.stat().st_size for log in logs]
        started = datetime.now(UTC)
        asyncio.run(publish(kafka, texts, f"{run}-l-", None))
        rows.wait(f"{run}-l-", len(texts), 1800)
        live = len(texts) / max(1e-6, (rows.span(f"{run}-l-")[1] - started).total_seconds())
        print(f"  live: {live:8.1f} texts/s", flush=True)
        print(f"    {breakdown(logs, offsets)}", flush=True)
        cpu = print_cores(cpu, pids)

        offsets = [log.stat().st_size for log in logs]
        offered = args.load * raw
        started = datetime.now(UTC)
        sent = asyncio.run(publish(kafka, texts, f"{run}-o-", offered, wait_each=False))
        rows.wait(f"{run}-o-", len(texts), 1800)
        loaded = len(texts) / max(1e-6, (rows.span(f"{run}-o-")[1] - started).total_seconds())
        print(
            f"  loaded (under load): {loaded:8.1f} texts/s, sent one by one at "
            f"{offered:.0f}/s offered ({sent:.0f}/s achieved)",
            flush=True,
        )
        print(f"    {breakdown(logs, offsets)}", flush=True)
        cpu = print_cores(cpu, pids)

        rate = live / 2
        n_lat = min(len(texts), max(300, int(rate * args.latency_seconds)))
        asyncio.run(publish(kafka, texts[:n_lat], f"{run}-t-", rate))
        rows.wait(f"{run}-t-", n_lat, 900)
        lat = rows.latencies(f"{run}-t-")
        p50, p99 = lat[len(lat) // 2], lat[max(0, int(len(lat) * 0.99) - 1)]
        print(
            f"  latency at {rate:.0f} texts/s (half the live rate), {n_lat} texts: "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms",
            flush=True,
        )
        print_cores(cpu, pids)
    finally:
        for service in services:
            service.terminate()
        rows.remove(f"{run}-")
        asyncio.run(remove_topics(kafka))
    return MemberFigures(members, threads, drain, live, loaded, p50, p99, lat)


def plot(figures: list[MemberFigures], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for f in figures:
        ax.hist(
            [x * 1000 for x in f.latencies],
            bins=50,
            alpha=0.6,
            label=f"{f.members} member(s): p50 {f.p50 * 1000:.0f} ms, p99 {f.p99 * 1000:.0f} ms",
        )
    ax.set_xlabel("publish -> result row (ms), at half the live rate")
    ax.set_ylabel("texts")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"latency plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument(
        "--texts", type=Path, default=None, help="CSV/pipe table with a text column"
    )
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--members", default="1,2", help="service processes, e.g. 1,2")
    parser.add_argument("--partitions", type=int, default=4)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    parser.add_argument(
        "--batch", type=int, default=defaults.model.inference_batch_size, help="texts per ORT run"
    )
    parser.add_argument(
        "--stripe",
        type=int,
        default=defaults.model.stripe_size,
        help="texts per scoring call (default: the whole batch)",
    )
    parser.add_argument(
        "--batch-records",
        type=int,
        default=defaults.kafka.batch_max_records,
        help="most records per consumed batch",
    )
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--load",
        type=float,
        default=1.2,
        help="the loaded phase offers this times the raw rate, one send at a time",
    )
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--plot", type=Path, default=REPO / "var" / "bench" / "latency.png")
    args = parser.parse_args()

    base = load_settings()
    texts = load_texts(args.texts or base.data.seed_dir / "labelled.csv", args.n)
    cores = usable_cores()
    print(
        f"{len(texts)} texts, mean {statistics.mean(len(t.split()) for t in texts):.0f} words; "
        f"{cores} usable cores; bundle {args.bundle}"
    )
    print(f"1. raw model throughput, {cores} threads (tokenise + normalise + onnxruntime)")
    raw = raw_throughput(args.bundle, texts, cores)
    best_raw = max(raw.values())

    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    rows = Rows(url)
    print("2. the service, end to end (publish -> result row + review event)")
    figures = [
        run_members(int(m), args, base, texts, rows, best_raw) for m in args.members.split(",") if m
    ]
    print("3. summary")
    print(
        "members threads/member drain t/s live t/s loaded t/s "
        "drain/raw live/raw loaded/raw p50 ms p99 ms"
    )
    for f in figures:
        print(
            f"{f.members:>7} {f.threads:>14} {f.drain:>9.1f} {f.live:>8.1f} {f.loaded:>10.1f} "
            f"{f.drain / best_raw:>9.2f} {f.live / best_raw:>8.2f} {f.loaded / best_raw:>10.2f} "
            f"{f.p50 * 1000:>6.0f} {f.p99 * 1000:>6.0f}"
        )
    print(f"raw (best batch's median, {cores} threads): {best_raw:.1f} texts/s")
    plot(figures, args.plot)


if __name__ == "__main__":
    main()
