"""Benchmark: the bundle's raw throughput against the service's end-to-end throughput.

    .venv/bin/python benchmarks/bench_service.py --bundle PATH [--n 10000]

Needs a running broker (`depdetect broker start`). Prints, in one run on one machine:
1. raw texts/s of the bundle at each batch size (no Kafka, no database);
2. end-to-end texts/s of the service: publish N texts -> result rows written
   (store_unflagged=score, so every text makes a row) and review events out;
3. p50/p99 end-to-end latency at a steady rate of half the measured capacity;
4. the ratio end-to-end / raw.
A plot of the latency distribution is saved next to the printed figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from depdetect.settings import KafkaSettings, Settings, StoreUnflagged, load_settings  # noqa: E402
from schemas.messages import SubmittedText  # noqa: E402
from schemas.migrate import upgrade  # noqa: E402
from schemas.tables import ResultRow  # noqa: E402
from services.inference.runner import ModelRunner  # noqa: E402
from services.kafka.admin import ensure_topics  # noqa: E402
from services.publisher.client import TextPublisher  # noqa: E402


def load_texts(path: Path, n: int, seed: int = 0) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        sep = "|" if "|" in fh.readline() else ","
        fh.seek(0)
        texts = [row["text"] for row in csv.DictReader(fh, delimiter=sep) if row.get("text")]
    rng = random.Random(seed)
    return [rng.choice(texts) for _ in range(n)]


def raw_throughput(bundle: Path, texts: list[str], threads: int) -> dict[int, float]:
    out = {}
    for batch in (1, 8, 16, 32, 64, 128):
        runner = ModelRunner.from_bundle(bundle, micro_batch_size=batch, intra_op_threads=threads)
        runner.warm_up()
        sample = texts[: 400 if batch == 1 else 2000]
        started = time.perf_counter()
        for i in range(0, len(sample), 512):
            runner.score(sample[i : i + 512])
        out[batch] = len(sample) / (time.perf_counter() - started)
        print(f"  raw  batch {batch:>3}: {out[batch]:8.1f} texts/s", flush=True)
    return out


def count_rows(url: str, prefix: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(ResultRow)
            .where(ResultRow.message_id.like(f"{prefix}%"))
        ).scalar_one()
    engine.dispose()
    return int(n)


def latencies(url: str, prefix: str) -> list[float]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(ResultRow.submitted_at, ResultRow.classified_at).where(
                ResultRow.message_id.like(f"{prefix}%")
            )
        ).all()
    engine.dispose()
    return [(c - s).total_seconds() for s, c in rows]


async def publish(kafka: KafkaSettings, texts: list[str], prefix: str, rate: float | None) -> None:
    async with TextPublisher(kafka) as pub:
        if rate is None:
            msgs = [SubmittedText(message_id=f"{prefix}{i}", text=t) for i, t in enumerate(texts)]
            async for _ in pub.publish_many(msgs, window=1000):
                pass
            return
        interval = 1.0 / rate
        start = time.perf_counter()
        for i, t in enumerate(texts):
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
            # created_at is stamped now, so classified_at - created_at is end-to-end latency.
            await pub._producer.send(
                pub.topic,
                SubmittedText(message_id=f"{prefix}{i}", text=t).model_dump_json().encode(),
                key=f"{prefix}{i}".encode(),
            )
        await pub._producer.flush()


def wait_rows(url: str, prefix: str, n: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if count_rows(url, prefix) >= n:
            return time.perf_counter()
        time.sleep(0.2)
    raise SystemExit(f"timed out: {count_rows(url, prefix)}/{n} rows")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument(
        "--texts", type=Path, default=None, help="CSV/pipe table with a text column"
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--plot", type=Path, default=REPO / "var" / "bench" / "latency.png")
    args = parser.parse_args()

    base = load_settings()
    texts = load_texts(args.texts or base.data.seed_dir / "labelled.csv", args.n)
    print(
        f"{len(texts)} texts, mean {statistics.mean(len(t.split()) for t in texts):.0f} words; "
        f"{args.threads} threads; bundle {args.bundle}"
    )
    print("1. raw model throughput (tokenise + normalise + onnxruntime)")
    raw = raw_throughput(args.bundle, texts, args.threads)
    best_batch = max(raw, key=raw.__getitem__)

    run = uuid.uuid4().hex[:8]
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    kafka = base.kafka.model_copy(
        update={
            "input_topics": [f"bench-{run}.in"],
            "review_topic": f"bench-{run}.review",
            "dead_letter_topic": f"bench-{run}.dlq",
            "consumer_group": f"bench-{run}",
            "batch_max_records": 128,
            "batch_max_wait_ms": 50,
            "partitions": 3,
        }
    )
    asyncio.run(ensure_topics(kafka))
    settings = Settings(
        kafka=kafka,
        database={"url": url},
        model={
            "bundle_path": args.bundle,
            "inference_batch_size": best_batch,
            "intra_op_threads": args.threads,
        },
        storage={"store_unflagged": StoreUnflagged.SCORE},
    )

    from tests.service.harness import ServiceProcess

    log = Path(tempfile.mkdtemp()) / "service.log"
    service = ServiceProcess(settings, log).start()
    try:
        print("2. end-to-end throughput (publish -> result row + review event)")
        t0 = time.perf_counter()
        asyncio.run(publish(kafka, texts, "tp-", None))
        t1 = wait_rows(url, "tp-", len(texts), 1800)
        e2e = len(texts) / (t1 - t0)
        print(f"  e2e: {e2e:8.1f} texts/s ({t1 - t0:.1f} s for {len(texts)})")

        rate = e2e / 2
        n_lat = min(len(texts), max(500, int(rate * 30)))
        print(f"3. latency at a steady {rate:.0f} texts/s (half capacity), {n_lat} texts")
        asyncio.run(publish(kafka, texts[:n_lat], "lat-", rate))
        wait_rows(url, "lat-", n_lat, 900)
        lat = sorted(latencies(url, "lat-"))
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
        print(f"  p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms")
    finally:
        service.terminate()

    ratio = e2e / raw[best_batch]
    print(f"4. ratio end-to-end / raw = {e2e:.1f} / {raw[best_batch]:.1f} = {ratio:.2f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist([x * 1000 for x in lat], bins=50)
        ax.axvline(p50 * 1000, color="k", linestyle="--", label=f"p50 {p50 * 1000:.0f} ms")
        ax.axvline(p99 * 1000, color="r", linestyle="--", label=f"p99 {p99 * 1000:.0f} ms")
        ax.set_xlabel("end-to-end latency (ms)")
        ax.set_ylabel("texts")
        ax.set_title(f"{n_lat} texts at {rate:.0f}/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"latency plot: {args.plot}")
    except ImportError:
        print("(matplotlib not installed: no plot)")


if __name__ == "__main__":
    main()
