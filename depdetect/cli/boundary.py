"""The CLI's one error boundary: every failure ends as one line saying what to do.

Errors the project raises on purpose (``DepdetectError``) already say how to fix them.
Known environment failures are translated here; anything else is unexpected, and the
line says how to see the traceback. Exit codes: 1 failure, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import typer

from schemas.errors import DepdetectError

DEBUG_HINT = "rerun with DEPDETECT_LOG_LEVEL=DEBUG for the traceback"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def explain(exc: BaseException) -> str:
    """What went wrong and what to do, on one line (never a text or a secret)."""
    if isinstance(exc, DepdetectError):
        return _one_line(str(exc))
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, OperationalError):
        # str(exc) would carry the SQL and its parameters: only the driver's first line.
        reason = _one_line(str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__)
        return (
            f"cannot use the database ({reason}): check DEPDETECT_DATABASE__URL, or start "
            "a local one with `depdetect db start`"
        )
    if type(exc).__module__.startswith("aiokafka") and "Connection" in type(exc).__name__:
        return (
            f"cannot reach Kafka ({_one_line(str(exc))}): check "
            "DEPDETECT_KAFKA__BOOTSTRAP_SERVERS, or start a local broker with "
            "`depdetect broker start`"
        )
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc}: no such file or directory"
    if isinstance(exc, PermissionError):
        return f"{exc.filename or exc}: permission denied"
    return f"unexpected {type(exc).__name__}: {_one_line(str(exc))[:300]} ({DEBUG_HINT})"


def run(app: Callable[[], object]) -> None:
    """Run the typer app; translate what escapes it into one line and an exit code."""
    try:
        app()
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("DEPDETECT_LOG_LEVEL", "").upper() == "DEBUG":
            raise
        typer.secho(f"error: {explain(exc)}", fg=typer.colors.RED, err=True)
        sys.exit(1)
