"""Turn consumed Kafka records into valid texts or dead letters (never an exception)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import ContractError
from schemas.messages import DeadLetter, SubmittedText, decode, encode


@dataclass(frozen=True)
class Accepted:
    message: SubmittedText
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    #: The consumed record, for a dead letter if a later step pins a failure on it.
    record: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Rejected:
    dead_letter: DeadLetter
    key: bytes | None
    headers: list[tuple[str, bytes]]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _headers_text(headers: Iterable[tuple[str, bytes]]) -> dict[str, str]:
    return {k: v.decode("utf-8", "backslashreplace") for k, v in headers}


def dead_letter(record: Any, reason: str, error_type: str) -> Rejected:
    """The dead letter for a consumed record: why, where from, and its original bytes."""
    value: bytes = record.value if record.value is not None else b""
    headers = list(record.headers or ())
    return Rejected(
        dead_letter=DeadLetter(
            reason=reason,
            error_type=error_type,
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
            rejected.append(dead_letter(record, exc.reason, type(exc).__name__))
            continue
        accepted.append(
            Accepted(
                message, record.topic, record.partition, record.offset, record.timestamp, record
            )
        )
    return accepted, rejected


#: Room left for the record's framing, key and our own headers (bytes).
_FRAMING_BYTES = 4096


def fit_dead_letter(rejected: Rejected, max_request_bytes: int) -> tuple[bytes, bytes | None]:
    """The dead letter's value and key, cut to fit the broker's maximum request size.

    Never drops the record: what is cut is the original payload (then its headers, then
    its key), and ``truncated``/``original_payload_bytes`` say so.
    """
    letter = rejected.dead_letter
    key = rejected.key
    budget = max_request_bytes - _FRAMING_BYTES
    value = encode(letter)
    if len(value) + len(key or b"") <= budget:
        return value, key
    original = base64.b64decode(letter.payload_b64)
    update: dict[str, Any] = {"truncated": True, "original_payload_bytes": len(original)}
    if len(key or b"") > budget // 4:  # an oversized key goes, it is kept in key_b64 if it fits
        key = None
    excess = len(value) + len(key or b"") - budget
    keep = max(0, len(original) - (excess * 3) // 4 - 8)
    update["payload_b64"] = _b64(original[:keep]) or ""
    value = encode(letter.model_copy(update=update))
    if len(value) + len(key or b"") > budget:
        update["headers"] = {}
        update["key_b64"] = None
        value = encode(letter.model_copy(update=update))
    if len(value) + len(key or b"") > budget:
        update["payload_b64"] = ""
        value = encode(letter.model_copy(update=update))
    return value, key
