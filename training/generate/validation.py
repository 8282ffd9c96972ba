"""Checks on each generated text: non-empty, length within the bucket, language, dedup key.

Duplicates are checked by the caller against the run's store (in the same transaction as
the inserts), so that a rolled-back batch never leaves phantom "seen" texts behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.text import detect_language
from training.generate.config import Bucket


class Reason(StrEnum):
    EMPTY = "empty"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    WRONG_LANGUAGE = "wrong_language"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Verdict:
    text: str
    word_count: int
    detected_language: str | None
    reason: Reason | None
    detail: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None


def word_count(text: str) -> int:
    return len(text.split())


class LanguageDetector:
    """The project's one detector (``schemas.text``): the most likely supported language.

    A class so that tests can hand the validator a stand-in."""

    def detect(self, text: str) -> str:
        return detect_language(text).language


class TextValidator:
    def __init__(self, tolerance: float, detector: LanguageDetector | None = None) -> None:
        self.tolerance = tolerance
        self.detector = detector or LanguageDetector()

    def check(self, raw: str, *, language: str, bucket: Bucket) -> Verdict:
        """Everything but duplicates; the first failing check is the reason."""
        text = raw.strip()
        count = word_count(text)
        if not text:
            return Verdict(text, 0, None, Reason.EMPTY)
        low, high = bucket.allowed(self.tolerance)
        detected = self.detector.detect(text)
        if count < low:
            return Verdict(text, count, detected, Reason.TOO_SHORT, f"{count} words < {low}")
        if count > high:
            return Verdict(text, count, detected, Reason.TOO_LONG, f"{count} words > {high}")
        if detected != language:
            return Verdict(
                text, count, detected, Reason.WRONG_LANGUAGE, f"detected {detected}, not {language}"
            )
        return Verdict(text, count, detected, None)
