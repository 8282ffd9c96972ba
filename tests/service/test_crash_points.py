"""Deterministic crash points: the service exits hard (``os._exit(86)``) right after one
step of a batch, before its offsets are committed; a second service takes over and the
ledger must hold.

What a replay may repeat is exactly what the crash left confirmed but uncommitted: the
dead letters of the crashed batch (always, they come first), and its review events when
the crash came after they were acked but before the outbox was marked. Rows never repeat
(unique message ids), and no flag may end without a review event.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from depdetect.settings import Settings
from schemas.messages import SubmittedText
from services.classifier.batch import CRASH_EXIT_CODE
from services.kafka.admin import ensure_topics
from tests.service.harness import ServiceProcess
from tests.support.ledger import Ledger, texts

pytestmark = pytest.mark.kafka

BATCH = 16


def _mixed(n: int, poison_every: int) -> list[SubmittedText | tuple[bytes, bytes | None]]:
    """Valid texts with a poison record (not JSON) every ``poison_every``-th."""
    out: list[SubmittedText | tuple[bytes, bytes | None]] = []
    for i, message in enumerate(texts("crash", n)):
        out.append(message)
        if i % poison_every == poison_every - 1:
            out.append((b"{not json " + str(i).encode(), f"bad-{i}".encode()))
    return out


@pytest.mark.parametrize(
    ("step", "repeatable_reviews"),
    [
        ("dead_letters", 0),  # crashed before any row: reviews come once, on the replay
        ("rows", BATCH),  # rows committed, reviews not sent: the sweep or the replay sends
        ("reviews", BATCH),  # reviews acked, outbox not marked: the replay sends them again
        ("outbox", 0),  # outbox marked: the replay finds nothing left to send
    ],
)
async def test_a_crash_after_each_step_loses_nothing(
    step: str,
    repeatable_reviews: int,
    service_settings: Callable[..., Settings],
    fresh_postgres_url: str,
    tmp_path: Path,
) -> None:
    settings = service_settings(fresh_postgres_url, service={"crash_after": step})
    settings.kafka.batch_max_records = BATCH
    await ensure_topics(settings.kafka)
    ledger = Ledger(settings)

    doomed = ServiceProcess(settings, tmp_path / "doomed.log").start()
    await ledger.publish(_mixed(150, poison_every=5))
    assert doomed.wait_exit(180) == CRASH_EXIT_CODE, doomed.log()
    assert f"crash_after={step}" in doomed.log()
    before = await ledger.check()
    assert before.lost, "the crash left work undone"

    survivor = ServiceProcess(
        settings.model_copy(
            update={"service": settings.service.model_copy(update={"crash_after": None})}
        ),
        tmp_path / "survivor.log",
    ).start()
    try:
        report = await ledger.assert_holds(
            timeout=240,
            max_duplicate_reviews=repeatable_reviews,
            max_duplicate_dead_letters=BATCH,
        )
    finally:
        assert survivor.terminate() == 0, survivor.log()
    print(f"crash after {step}:", report.summary())
    assert report.rows == report.valid == 150
    assert report.dead_letters >= report.poison == 30
