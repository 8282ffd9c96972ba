"""Read labelled tables (the shared input contract) into one frame.

Contract: a header row, required columns ``text`` and ``label`` (0/1), optional
``language``, ``category``, ``source``, ``origin``; pipe-separated, though tab and
comma tables are accepted too (the separator is sniffed from the header) so the
generator's and the moderators' exports load without conversion.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from schemas.errors import ConfigurationError

REQUIRED = ("text", "label")
OPTIONAL = ("language", "category", "source", "origin")
COLUMNS = (*REQUIRED, *OPTIONAL, "weight")


@dataclass(frozen=True)
class InputSpec:
    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> InputSpec:
        """``PATH`` or ``PATH:WEIGHT``; a suffix that is not a number belongs to the path."""
        head, sep, tail = spec.rpartition(":")
        if sep:
            try:
                weight = float(tail)
            except ValueError:
                return cls(Path(spec))
            if weight <= 0:
                raise ConfigurationError(f"input weight must be positive: {spec!r}")
            return cls(Path(head), weight)
        return cls(Path(spec))


def sniff_separator(path: Path) -> str:
    with path.open(encoding="utf-8") as fh:
        header = fh.readline()
    if path.suffix.lower() == ".tsv" or "\t" in header:
        return "\t"
    if "|" in header:
        return "|"
    return ","


def read_table(path: Path, sep: str | None = None) -> pd.DataFrame:
    """Any CSV/TSV/pipe table as strings-preserving pandas frame."""
    if not path.is_file():
        raise ConfigurationError(f"table {path} does not exist")
    sep = sep or sniff_separator(path)
    # QUOTE_MINIMAL round-trips texts that contain the separator; keep_default_na=False
    # stops a text like "NA" or "null" from becoming a missing value.
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)


def read_labelled(spec: InputSpec) -> pd.DataFrame:
    """Rows of one input with the contract columns; ``origin`` defaults to the file name."""
    frame = read_table(spec.path)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigurationError(
            f"{spec.path} lacks required column(s) {missing}; found {list(frame.columns)}"
        )
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        examples = frame.loc[bad, "label"].head(3).tolist()
        raise ConfigurationError(
            f"{spec.path}: {int(bad.sum())} row(s) have a label other than 0/1, e.g. {examples}"
        )
    out = pd.DataFrame({"text": frame["text"], "label": labels.astype(int)})
    for column in OPTIONAL:
        out[column] = frame[column] if column in frame.columns else ""
    out["origin"] = out["origin"].where(out["origin"] != "", spec.path.name)
    out["source"] = out["source"].where(out["source"] != "", spec.path.stem)
    out["weight"] = spec.weight
    return out[list(COLUMNS)]


def write_table(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="|", index=False)
