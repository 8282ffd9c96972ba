"""`depdetect dead-letters replay` on the real broker: records dead-lettered for a cause
that is then fixed go back to the input topic, byte for byte, and are processed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import create_engine, text

from depdetect.settings import Settings
from schemas.messages import DeadLetter, SubmittedText, decode
from schemas.migrate import upgrade
from services.classifier.dead_letters import REPLAYED_FROM
from services.kafka.admin import ensure_topics
from services.kafka.reading import end_offsets
from tests.service.fakes import refuse_source
from tests.service.harness import DEPDETECT, ServiceProcess, read_topic, stored_ids, wait_for

pytestmark = [pytest.mark.kafka]


def _cli(settings: Settings, *args: str) -> str:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DEPDETECT_")}
    done = subprocess.run(
        [DEPDETECT, "dead-letters", "replay", *args],
        env={**inherited, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_replay_sends_fixable_dead_letters_back_and_they_are_processed(
    service_settings: Callable[..., Settings],
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    settings = service_settings(sqlite_url)
    kafka = settings.kafka
    await ensure_topics(kafka)
    upgrade(sqlite_url)
    refuse_source(sqlite_url, "blocked")  # a database rule, later lifted

    fixable = [
        SubmittedText(message_id=f"fix-{i}", text=f"text {i}", source="blocked") for i in range(5)
    ]
    ok = [SubmittedText(message_id=f"ok-{i}", text=f"fine {i}") for i in range(5)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for msg in [*fixable, *ok]:
            await producer.send_and_wait(
                kafka.input_topics[0], msg.model_dump_json().encode(), key=msg.message_id.encode()
            )
        await producer.send_and_wait(kafka.input_topics[0], b"{broken", key=b"broken")
    finally:
        await producer.stop()

    service = ServiceProcess(settings, tmp_path / "first.log").start()
    try:
        dead = await read_topic(kafka.bootstrap_servers, kafka.dead_letter_topic, expect=6)
    finally:
        assert service.terminate() == 0, service.log()
    assert len(dead) == 6
    assert set(stored_ids(sqlite_url)) == {m.message_id for m in ok}

    before = await end_offsets(kafka.bootstrap_servers, kafka.input_topics[0])
    out = _cli(settings, "--reason", "DATABASE REFUSED")
    assert "5 of 6 dead letters match" in out and "dry run" in out
    assert await end_offsets(kafka.bootstrap_servers, kafka.input_topics[0]) == before

    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER no_refused"))  # the cause is fixed
    engine.dispose()
    out = _cli(settings, "--reason", "database refused", "--yes")
    assert "replayed 5 records" in out
    after = await end_offsets(kafka.bootstrap_servers, kafka.input_topics[0])
    assert sum(after.values()) - sum(before.values()) == 5

    replayed = [
        r
        for r in await read_topic(kafka.bootstrap_servers, kafka.input_topics[0], expect=16)
        if REPLAYED_FROM in r[2]
    ]
    originals = {m.message_id: m.model_dump_json().encode() for m in fixable}
    assert sorted(v for _, v, _ in replayed) == sorted(originals.values()), "byte for byte"
    assert all(k is not None and k.decode() in originals for k, _, _ in replayed)

    service = ServiceProcess(settings, tmp_path / "second.log").start()
    try:
        await wait_for(
            lambda: set(stored_ids(sqlite_url)) >= set(originals), timeout=60, what="replayed rows"
        )
    finally:
        assert service.terminate() == 0, service.log()
    assert set(stored_ids(sqlite_url)) == set(originals) | {m.message_id for m in ok}
    letters = [
        decode(DeadLetter, v)
        for _, v, _ in await read_topic(kafka.bootstrap_servers, kafka.dead_letter_topic)
    ]
    assert len(letters) == 6, "nothing dead-lettered again"
    out = _cli(settings, "--reason", "not valid JSON", "--from-offset", "0")
    assert "1 of 6 dead letters match" in out
