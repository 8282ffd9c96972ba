"""One relay pass outside the API process (``depdetect results decide`` and
``publish-pending``), for when no API is running to publish."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import KafkaSettings
from services.api.outbox.relay import DecisionRelay
from services.api.outbox.sink import KafkaDecisionSink


async def publish_pending_once(
    *, kafka: KafkaSettings, sessions: sessionmaker[Session], timeout_s: float = 15.0
) -> int:
    """Publish what is pending; raises TransientError (the rest stays pending)."""
    sink = KafkaDecisionSink(kafka, timeout_s=timeout_s)
    try:
        return await DecisionRelay(sessions=sessions, sink=sink).publish_pending()
    finally:
        await sink.close()
