"""Read texts to publish from JSON lines, CSV or plain-text streams."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

from schemas.errors import ContractError

InputFormat = Literal["auto", "jsonl", "csv", "text"]


def guess_format(path: Path | None) -> InputFormat:
    if path is None:
        return "jsonl"
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    if suffix in {".csv", ".tsv", ".psv"}:
        return "csv"
    return "text"


def _csv_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;|\t").delimiter
    except csv.Error:
        return ","


def iter_records(stream: IO[str], fmt: InputFormat) -> Iterator[dict[str, Any]]:
    """Yield one dict per text; each has at least ``text``. Line numbers appear in errors."""
    if fmt == "jsonl":
        for lineno, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ContractError(f"line {lineno}: not valid JSON ({exc.msg})") from exc
            if isinstance(record, str):
                record = {"text": record}
            if not isinstance(record, dict):
                raise ContractError(f"line {lineno}: expected a JSON object or string")
            yield record
    elif fmt == "csv":
        sample = stream.read(4096)
        rest = stream.read()
        reader = csv.DictReader((sample + rest).splitlines(), delimiter=_csv_delimiter(sample))
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise ContractError(f"CSV needs a 'text' column; found columns {reader.fieldnames}")
        for row in reader:
            yield {k: v for k, v in row.items() if k and v not in (None, "")}
    else:
        for line in stream:
            if line.strip():
                yield {"text": line.rstrip("\n")}


def with_message_id(record: dict[str, Any]) -> dict[str, Any]:
    """Producers own message ids; a record without one gets a fresh UUID here."""
    if not record.get("message_id"):
        record = {**record, "message_id": str(uuid.uuid4())}
    return record
