"""Logging set-up for every command: plain text for people, JSON lines for machines.

Libraries log at WARNING (their INFO chatter, e.g. onnxruntime's quantizer, would drown
the output); the project's own packages at the configured level. Log records carry
ids, counts and reasons, never the texts themselves.
"""

from __future__ import annotations

import logging
import traceback

import structlog

from schemas.errors import DepdetectError

OWN_PACKAGES = ("depdetect", "services", "training", "schemas")


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback (frames, chained causes) with the message of every exception that is
    not the project's own hidden: drivers, pydantic and tokenizers quote input values."""
    lines: list[str] = []
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    for i, item in enumerate(reversed(chain)):
        if i:
            lines.append("\nThe above exception led to the following one:\n\n")
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_list(traceback.extract_tb(item.__traceback__)))
        shown = str(item) if isinstance(item, DepdetectError) else "<message hidden>"
        lines.append(f"{type(item).__module__}.{type(item).__qualname__}: {shown}\n")
    return "".join(lines).rstrip("\n")


class ScrubExceptions(logging.Filter):
    """Texts are sensitive: a logged exception keeps its traceback and class, but only the
    project's own exceptions keep their message (which names ids and fields, never texts)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            text = scrubbed_traceback(record.exc_info[1])
            record.msg = f"{record.getMessage()}\n{text}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(ScrubExceptions())
    if fmt == "json":
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=[
                    structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                ],
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in OWN_PACKAGES:
        logging.getLogger(name).setLevel(level.upper())
