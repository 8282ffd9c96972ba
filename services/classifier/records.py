"""Turn consumed Kafka records into valid texts or dead letters (never an exception)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from schemas.errors import ContractError
from schemas.messages import DeadLetter, SubmittedText, decode


@dataclass(frozen=True)
class Accepted:
    message: SubmittedText
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True)
class Rejected:
    dead_letter: DeadLetter
    key: bytes | None
    headers: list[tuple[str, bytes]]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _headers_text(headers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    return {k: v.decode("utf-8", "backslashreplace") for k, v in headers}


def sort_records(
    records: Iterable[Any], *, max_text_chars: int
) -> tuple[list[Accepted], list[Rejected]]:
    """Validate each record against the submitted-text contract."""
    accepted: list[Accepted] = []
    rejected: list[Rejected] = []
    for record in records:
        value: bytes = record.value if record.value is not None else b""
        try:
            message = decode(SubmittedText, value, max_text_chars=max_text_chars)
        except ContractError as exc:
            headers = list(record.headers or ())
            rejected.append(
                Rejected(
                    dead_letter=DeadLetter(
                        reason=exc.reason,
                        error_type=type(exc).__name__,
                        source_topic=record.topic,
                        source_partition=record.partition,
                        source_offset=record.offset,
                        key_b64=_b64(record.key),
                        payload_b64=_b64(value) or "",
                        headers=_headers_text(headers),
                    ),
                    key=record.key,
                    headers=headers,
                )
            )
            continue
        accepted.append(
            Accepted(message, record.topic, record.partition, record.offset, record.timestamp)
        )
    return accepted, rejected
