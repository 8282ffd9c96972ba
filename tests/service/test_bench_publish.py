"""The service benchmark's paced publishing (``benchmarks/bench_service.publish``): every
text stamped at its own send, at the rate asked, each send awaited or not; its latency
figures (classified_at - submitted_at) rest on that stamp."""

from __future__ import annotations

import pytest

from benchmarks.bench_service import publish
from depdetect.settings import KafkaSettings
from schemas.messages import SubmittedText, decode
from services.kafka.admin import ensure_topics
from tests.support.ledger import read_to_end

pytestmark = [pytest.mark.kafka]


@pytest.mark.parametrize("wait_each", [True, False])
async def test_paced_sends_are_stamped_at_their_own_send(
    kafka_settings: KafkaSettings, wait_each: bool
) -> None:
    await ensure_topics(kafka_settings)
    texts = [f"text number {i}" for i in range(20)]
    achieved = await publish(kafka_settings, texts, "paced-", 20.0, wait_each=wait_each)
    records = await read_to_end(kafka_settings.bootstrap_servers, kafka_settings.input_topics[0])
    stamps = sorted(decode(SubmittedText, r.value).created_at for r in records if r.value)
    assert len(stamps) == len(texts)
    # 19 intervals of 50 ms between the first send and the last: not one stamp for all.
    assert 0.8 <= (stamps[-1] - stamps[0]).total_seconds() <= 3.0
    assert 8.0 <= achieved <= 21.0
