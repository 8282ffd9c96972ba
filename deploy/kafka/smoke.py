"""Smoke check of the broker started by deploy/kafka/kafka.sh.

    python deploy/kafka/smoke.py [--bootstrap HOST:PORT,...] [--replication N]

Creates a fresh topic, produces N messages with acks=all and reads them back
with a consumer group, then deletes the topic. Needs aiokafka (the project's
venv has it); without it, only checks that every bootstrap port accepts TCP.
Exit 0 on success. The default bootstrap is `kafka.sh bootstrap`'s output.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path


def default_bootstrap() -> str:
    script = Path(__file__).with_name("kafka.sh")
    out = subprocess.run([str(script), "bootstrap"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def tcp_check(bootstrap: str) -> None:
    """Fails only if no bootstrap server accepts: fault tests kill some."""
    up = 0
    for hostport in bootstrap.split(","):
        host, port = hostport.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=5):
                up += 1
                print(f"tcp ok: {hostport}")
        except OSError as exc:
            print(f"tcp down: {hostport} ({exc})")
    if not up:
        raise SystemExit("no bootstrap server accepts connections")


async def roundtrip(bootstrap: str, replication: int, count: int) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=3, replication_factor=replication)]
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            t0 = time.monotonic()
            sent = [f"m{i}".encode() for i in range(count)]
            for i, value in enumerate(sent):
                await producer.send(topic, value, key=str(i % 7).encode())
            await producer.flush()
            print(
                f"produced {count} messages to {topic} (acks=all) in {time.monotonic() - t0:.2f}s"
            )
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"{topic}-group",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            got: list[bytes] = []
            deadline = time.monotonic() + 60
            while len(got) < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    got.extend(r.value for r in records)
            await consumer.commit()
        finally:
            await consumer.stop()
        if sorted(got) != sorted(sent):
            raise SystemExit(f"consumed {len(got)} of {count} messages")
        print(f"consumed and committed {len(got)} messages")
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--replication", type=int, default=1)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    # aiokafka logs every failed reconnect to a killed node at WARNING.
    logging.basicConfig(level=logging.ERROR)
    bootstrap = args.bootstrap or default_bootstrap()
    tcp_check(bootstrap)
    try:
        import aiokafka  # noqa: F401
    except ImportError:
        print("aiokafka not installed: TCP check only", file=sys.stderr)
        return 0
    asyncio.run(roundtrip(bootstrap, args.replication, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
