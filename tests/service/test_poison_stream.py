"""No record can stall the consumer: the real service, the real broker (3 partitions), SQLite
and PostgreSQL, valid records mixed with every kind of poison we could think of.

The service must make progress: exactly one row per valid record, exactly one dead letter
per poison record with the expected reason, within a bounded time, no batch failing as a
whole, and none of the texts in its log."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from depdetect.settings import Settings
from schemas.messages import DeadLetter, decode
from schemas.migrate import upgrade
from services.kafka.admin import ensure_topics
from tests.service.fakes import refuse_source
from tests.service.harness import ServiceProcess, read_topic, stored_ids, wait_for
from tests.service.texts import stream

pytestmark = [pytest.mark.kafka]

SECRET = "zebra-secret-sentence"
MAX_CHARS = 300
REFUSED_SOURCE = "refused-by-db"
#: An input record near the broker's limit: its dead letter (base64) would not fit.
BIG = 900_000


def _j(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def poison_records() -> list[tuple[bytes, str]]:
    """(payload, fragment of the dead letter's reason): attackers and messy scrapers."""
    long = "y" * (MAX_CHARS + 1)
    return [
        (b"\xff\xfe\x00not utf-8", "not valid UTF-8"),
        (b"{this is not json " + SECRET.encode(), "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[" * 50_000, "nests too deeply"),
        (b'["a", "list"]', "JSON object"),
        # An escaped emoji written as two escaped surrogates in the wrong order, and a lone one.
        (
            b'{"message_id": "p-s1", "text": "so tired \\ude22\\ud83d ' + SECRET.encode() + b'"}',
            "text: contains a lone UTF-16 surrogate",
        ),
        (b'{"message_id": "p-s2", "text": "so tired \\ud83d"}', "lone UTF-16 surrogate"),
        (b'{"message_id": "p-s3", "text": "ok", "metadata": {"\\udc00": 1}}', "surrogate"),
        (
            b'{"message_id": "p-n1", "text": "nul \\u0000 ' + SECRET.encode() + b'"}',
            "text: contains a NUL character",
        ),
        (_j(message_id="p-n2", text="ok", author_ref="a\x00b"), "author_ref: contains a NUL"),
        (_j(message_id="p-v1", text="ok", schema_version="1"), "schema_version: Input should"),
        (_j(message_id="p-v2", text="ok", schema_version=1.0), "schema_version: Input should"),
        (_j(message_id="p-v3", text="ok", schema_version=2), "unsupported schema_version 2"),
        (_j(message_id="p-l1", text="ok", author_ref="a" * 201), "author_ref: String should"),
        (_j(message_id="p-l2", text="ok", source="s" * 201), "source: String should"),
        (_j(message_id="m" * 201, text="ok"), "message_id: String should"),
        (_j(message_id="p-l3", text=long + SECRET), "more than the maximum"),
        (_j(message_id="p l4", text="ok"), "message_id: String should match pattern"),
        (_j(message_id="p-t1", text=42), "text: Input should be a valid string"),
        (_j(message_id="p-x1", text="ok", unexpected=True), "Extra inputs"),
        (_j(message_id="p-big", text="z" * BIG), "more than the maximum"),
        # Valid by the contract, refused by a rule of the database: isolated at the write.
        (
            _j(message_id="p-db1", text=f"so sad {SECRET}", source=REFUSED_SOURCE),
            "the database refused the result row",
        ),
        (
            _j(message_id="p-db2", text="a fine day", source=REFUSED_SOURCE),
            "the database refused the result row",
        ),
    ]


def valid_edge_records() -> list[tuple[str, bytes]]:
    """Messy but valid: they must be stored, not dead-lettered."""
    return [
        ("e-max", _j(message_id="e-max", text="x" * MAX_CHARS)),
        ("e-pair", b'{"message_id": "e-pair", "text": "so tired \\ud83d\\ude22"}'),
        ("e-zw", _j(message_id="e-zw", text="\u200b\u200d\ufeff hidden")),
        ("e-ctl", _j(message_id="e-ctl", text="bell \u0007 del \u007f")),
        ("e-rtl", _j(message_id="e-rtl", text="\u202eשלום עולם")),
        ("e-nonchar", _j(message_id="e-nonchar", text="\ufffe\uffff \U0010ffff")),
        ("e-dup", b'{"message_id": "e-dup", "text": "first", "text": "second"}'),
        ("e-meta", _j(message_id="e-meta", text="ok", metadata={"a": [[[1]]], "n": None})),
        ("e-200", _j(message_id="e-200", text="ok", author_ref="a" * 200, source="s" * 200)),
    ]


@pytest.mark.parametrize("db", ["sqlite", "fresh_postgres"])
async def test_poison_of_every_kind_is_dead_lettered_and_the_stream_goes_on(
    db: str,
    request: pytest.FixtureRequest,
    service_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    url = request.getfixturevalue(f"{db}_url")
    settings = service_settings(url, contract={"max_text_chars": MAX_CHARS})
    settings.kafka.batch_max_records = 32
    assert settings.kafka.partitions == 3
    await ensure_topics(settings.kafka)
    upgrade(url)
    refuse_source(url, REFUSED_SOURCE)

    rng = random.Random(7)
    valid = [
        (f"v-{i}", _j(message_id=f"v-{i}", text=text, source="test", language=lang))
        for i, (lang, text) in enumerate(stream(240))
    ]
    items: list[tuple[str, bytes, str | None]] = [(i, p, None) for i, p in valid]
    items += [(i, p, None) for i, p in valid_edge_records()]
    items += [(f"poison-{n}", p, reason) for n, (p, reason) in enumerate(poison_records())]
    rng.shuffle(items)

    expected_reason: dict[tuple[int, int], str] = {}
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", max_request_size=BIG * 2
    )
    await producer.start()
    try:
        for n, (_, payload, reason) in enumerate(items):
            meta = await producer.send_and_wait(
                settings.kafka.input_topics[0], payload, key=f"k{n}".encode()
            )
            if reason is not None:
                expected_reason[(meta.partition, meta.offset)] = reason
    finally:
        await producer.stop()
    valid_ids = sorted(i for i, _, r in items if r is None)
    assert len({p for p, _ in expected_reason}) == 3, "poison on every partition"

    service = ServiceProcess(settings, tmp_path / "service.log").start()
    try:
        await wait_for(
            lambda: len(stored_ids(url)) >= len(valid_ids), timeout=120, what="every valid record"
        )
        dead = await read_topic(
            settings.kafka.bootstrap_servers,
            settings.kafka.dead_letter_topic,
            expect=len(expected_reason),
            timeout=60,
        )
        assert service.health()[0] == 200
        assert service.metric("depdetect_failed_batches_total") == 0, "no batch failed whole"
        assert service.metric("depdetect_dead_lettered_total") == len(expected_reason)
    finally:
        assert service.terminate() == 0, service.log()

    assert sorted(stored_ids(url)) == valid_ids, "exactly one row per valid record, none for poison"
    letters = {(d.source_partition, d.source_offset): (d, h) for d, h in _decoded(dead)}
    assert len(dead) == len(letters) == len(expected_reason), "one dead letter per poison"
    for where, fragment in expected_reason.items():
        letter, _ = letters[where]
        assert fragment in letter.reason, (where, letter.reason)
    big = next((d, h) for d, h in letters.values() if d.original_payload_bytes and d.truncated)
    assert (big[0].original_payload_bytes or 0) > BIG
    assert big[1]["depdetect-truncated"] == b"true"
    small = [d for d, _ in letters.values() if not d.truncated]
    assert len(small) == len(expected_reason) - 1
    assert all(base64.b64decode(d.payload_b64) in {p for _, p, _ in items} for d in small)
    assert SECRET not in service.log(), "texts never reach the log"


def _decoded(
    records: list[tuple[bytes | None, bytes, dict[str, bytes]]],
) -> list[tuple[DeadLetter, dict[str, bytes]]]:
    return [(decode(DeadLetter, value), headers) for _, value, headers in records]
