"""The multilingual sentiment corpus as label-0 rows (the original project's choice).

Negative sentiment is not depression, so every row is "healthy" whatever its
sentiment. Loaded from a local copy when the path exists, else from the hub id with
``datasets`` (only where the hub is reachable).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from schemas.errors import ConfigurationError
from schemas.text import LANGUAGES
from training.prepare.tables import COLUMNS

HUB_ID = "tyqiangz/multilingual-sentiments"
#: Language codes to the names the corpus uses for its folders and hub configs.
NAMES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "it": "italian",
    "pt": "portuguese",
    "es": "spanish",
}
COMBINED = "umsab_6lang_combined.csv"


def _from_directory(root: Path) -> pd.DataFrame:
    combined = root / COMBINED
    if combined.is_file():
        frame = pd.read_csv(combined, dtype=str, keep_default_na=False)
        return pd.DataFrame({"text": frame["text"], "language": frame["lang"]})
    parts = []
    for code, name in NAMES.items():
        for text_file in sorted((root / name).glob("*_text.txt")):
            lines = text_file.read_text(encoding="utf-8").splitlines()
            parts.append(pd.DataFrame({"text": lines, "language": code}))
    if not parts:
        raise ConfigurationError(f"{root} has neither {COMBINED} nor <language>/*_text.txt files")
    return pd.concat(parts, ignore_index=True)


def _from_hub(hub_id: str) -> pd.DataFrame:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the training extra has it
        raise ConfigurationError("loading from the hub needs the training extra") from exc
    parts = []
    for code, name in NAMES.items():
        try:
            loaded = datasets.load_dataset(hub_id, name)
        except Exception as exc:  # network, auth, missing config: all mean "not here"
            raise ConfigurationError(
                f"cannot load {hub_id} ({name}) from the hub: {exc}. "
                "Pass a local copy instead (e.g. ../shared/data/multilingual_sentiments)"
            ) from exc
        for split in loaded.values():
            parts.append(pd.DataFrame({"text": split["text"], "language": code}))
    return pd.concat(parts, ignore_index=True)


def load_sentiment_corpus(source: str | Path, *, weight: float = 1.0) -> pd.DataFrame:
    """Rows in the labelled-table shape, label 0, limited to the six languages."""
    path = Path(source)
    frame = _from_directory(path) if path.exists() else _from_hub(str(source))
    frame = frame[frame["language"].isin(LANGUAGES)].copy()
    frame["label"] = 0
    frame["category"] = ""
    frame["source"] = "sentiment_corpus"
    frame["origin"] = Path(source).name or str(source)  # a name, never a machine path
    frame["weight"] = weight
    return frame[list(COLUMNS)].reset_index(drop=True)
