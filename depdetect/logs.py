"""Logging set-up for every command: plain text for people, JSON lines for machines.

Libraries log at WARNING (their INFO chatter, e.g. onnxruntime's quantizer, would drown
the output); the project's own packages at the configured level. Log records carry
ids, counts and reasons, never the texts themselves.
"""

from __future__ import annotations

import logging

import structlog

OWN_PACKAGES = ("depdetect", "services", "training", "schemas")


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
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
