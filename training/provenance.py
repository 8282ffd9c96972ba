"""How a bundle names what it was built from: file names, row counts, content hashes.

A bundle travels to other machines and is read by reviewers, so it must never carry the
training machine's absolute paths (they leak user names and directory layouts, and mean
nothing elsewhere). A content hash identifies an input better than a path anyway.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def content_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a directory's files (relative names and bytes, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def describe_input(source: str | Path, *, rows: int, weight: float) -> dict[str, Any]:
    """One input as a bundle records it: name, rows read, weight, and hash when local."""
    path = Path(source)
    entry: dict[str, Any] = {"name": path.name or str(source), "rows": rows, "weight": weight}
    if path.exists():
        entry["sha256"] = content_sha256(path)
    else:  # a hub dataset id: the id is already a portable name
        entry["name"] = str(source)
    return entry


def model_reference(name_or_path: str) -> str:
    """A base model as a bundle records it: a hub id as is, a local directory by its name."""
    path = Path(name_or_path)
    return path.name if path.is_absolute() or path.exists() else name_or_path
