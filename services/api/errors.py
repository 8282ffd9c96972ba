"""HTTP status codes for the project's errors: each a clear 4xx with a ``detail``."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from schemas.errors import ContractError, DepdetectError, TransientError
from services.results_query.errors import (
    DecisionContentionError,
    DecisionIdConflictError,
    NotFlaggedError,
    ResultNotFoundError,
)

STATUS: tuple[tuple[type[DepdetectError], int], ...] = (
    (ResultNotFoundError, status.HTTP_404_NOT_FOUND),
    (NotFlaggedError, status.HTTP_409_CONFLICT),
    (DecisionIdConflictError, status.HTTP_409_CONFLICT),
    (DecisionContentionError, status.HTTP_409_CONFLICT),
    (ContractError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (TransientError, status.HTTP_503_SERVICE_UNAVAILABLE),
)


async def _depdetect_error(_request: Request, exc: Exception) -> JSONResponse:
    code = next(
        (code for kind, code in STATUS if isinstance(exc, kind)),
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
    return JSONResponse({"detail": str(exc)}, status_code=code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DepdetectError, _depdetect_error)
