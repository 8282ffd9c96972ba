"""Cleaning, language detection and length buckets.

Cleaning only repairs the text (escapes, whitespace); artefacts such as ``@user``
stay, because the audit must see them and the model's input normalisation
(``schemas.text``) removes them identically at training and serving.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from schemas.text import NormalizationSettings, detect_language, normalize_text, resolve_language
from training.config import LENGTH_BUCKETS

_REPAIR = NormalizationSettings(
    decode_unicode_escapes=True,
    drop_urls=False,
    drop_mentions=False,
    strip_hashtag_marks=False,
    drop_emoji=False,
    collapse_whitespace=True,
)


def clean_text(text: str) -> str:
    return normalize_text(str(text), _REPAIR)


def word_count(text: str) -> int:
    return len(text.split())


def length_bucket(words: int) -> str:
    for low, high in LENGTH_BUCKETS:
        if low <= words <= high:
            return f"{low}-{high}"
    return "out-of-range"


def detect_languages(texts: Iterable[str]) -> list[str]:
    """The detector's top language per text (only to count disagreements)."""
    return [detect_language(text).top for text in texts]


def clean_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clean texts, add language/word_count/bucket; return rows kept and drop counts."""
    out = frame.copy()
    out["text"] = out["text"].map(clean_text)
    empty = out["text"] == ""
    out = out[~empty].copy()
    out["language_declared"] = out["language"].fillna("")
    out["language_detected"] = detect_languages(out["text"])
    # The one rule set (schemas.text): declared if ours, else detected if ours, else none.
    out["language"] = [
        resolve_language(text, declared) or ""
        for text, declared in zip(out["text"], out["language_declared"], strict=True)
    ]
    unknown_language = out["language"] == ""
    out = out[~unknown_language].copy()
    out["word_count"] = out["text"].map(word_count)
    out["bucket"] = out["word_count"].map(length_bucket)
    counts = {
        "empty": int(empty.sum()),
        "other_language": int(unknown_language.sum()),
        "language_disagreements": int(
            (
                (out["language_declared"] != "")
                & (out["language_declared"] != out["language_detected"])
            ).sum()
        ),
    }
    return out, counts


def filter_length(frame: pd.DataFrame, min_words: int, max_words: int) -> pd.DataFrame:
    return frame[frame["word_count"].between(min_words, max_words)].copy()
