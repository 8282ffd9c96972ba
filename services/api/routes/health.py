"""``/health``: liveness and readiness for orchestrators. No token, no data."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.api.deps import SessionsDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Ready when the database answers (no authentication)")
def health(sessions: SessionsDep) -> JSONResponse:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        database = True
    except SQLAlchemyError:
        database = False
    return JSONResponse(
        {"live": True, "ready": database, "checks": {"database": database}},
        status_code=200 if database else 503,
    )
