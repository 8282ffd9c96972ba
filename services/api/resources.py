"""What the app holds while it runs (built in the lifespan, never at import)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import Settings
from services.api.outbox.relay import DecisionRelay


@dataclass(frozen=True, kw_only=True)
class ApiResources:
    settings: Settings
    sessions: sessionmaker[Session]
    relay: DecisionRelay
