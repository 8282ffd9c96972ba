"""Text handling shared by training and serving: the language list, language detection,
normalisation and the dedup key. One place, so that what the model was trained on and
what the service feeds it cannot drift apart.

Normalisation: social-media artefacts (mentions, links, hashtags, emoji) are nearly
always in "healthy" tweets of the training data, so a model can learn them as a
shortcut. Normalising them identically at training and serving time removes that cue.
The settings travel inside each model bundle so that the service applies exactly what
the model was trained with.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict

#: The supported languages (ISO 639-1), in the contract's order.
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "it", "pt", "es")

_URL = re.compile(r"(?:https?://|www\.)\S+|\bhttps?\b", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\s]+")


def _is_emoji(ch: str) -> bool:
    # 'So' (other symbols) holds emoji and pictographs; variation selectors and ZWJ glue them.
    return (
        unicodedata.category(ch) == "So" or ch in "\ufe0f\u200d" or (0x1F3FB <= ord(ch) <= 0x1F3FF)
    )


class NormalizationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    decode_unicode_escapes: bool = True
    drop_urls: bool = True
    drop_mentions: bool = True
    strip_hashtag_marks: bool = True
    drop_emoji: bool = True
    collapse_whitespace: bool = True


def normalize_text(text: str, settings: NormalizationSettings | None = None) -> str:
    s = settings or NormalizationSettings()
    if s.decode_unicode_escapes and "\\u" in text:
        text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if s.drop_urls:
        text = _URL.sub(" ", text)
    if s.drop_mentions:
        text = _MENTION.sub(" ", text)
    if s.strip_hashtag_marks:
        text = _HASHTAG.sub(r"\1", text)
    if s.drop_emoji:
        text = "".join(" " if _is_emoji(ch) else ch for ch in text)
    if s.collapse_whitespace:
        text = _SPACE.sub(" ", text).strip()
    return text


def dedup_key(text: str) -> str:
    """Texts equal after normalisation, Unicode composition (NFKC), case, punctuation and
    spacing are the same text (prepare's exact duplicates, the generator's repeats)."""
    normal = unicodedata.normalize("NFKC", normalize_text(text)).casefold()
    return " ".join(_NON_WORD.sub(" ", normal).split())


@cache
def _identifier() -> Any:
    # Loaded once, on first use (the model ships in the py3langid wheel).
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@dataclass(frozen=True)
class DetectedLanguage:
    #: The most likely of the supported languages.
    language: str
    #: The most likely language of all py3langid knows (it may be none of ours).
    top: str

    @property
    def supported(self) -> bool:
        return self.top in LANGUAGES


def detect_language(text: str) -> DetectedLanguage:
    """The one language detector: py3langid on the normalised text (links, mentions and
    emoji say nothing about the language), over all its languages."""
    normalised = normalize_text(text)
    identifier = _identifier()
    # classify() is rank()'s first entry (py3langid folds aliased labels for both)
    # without sorting every language; the full ranking is needed only when the top is
    # none of ours.
    top = str(identifier.classify(normalised)[0])
    if top in LANGUAGES:
        return DetectedLanguage(language=top, top=top)
    ranking = identifier.rank(normalised)
    best = next(str(code) for code, _ in ranking if code in LANGUAGES)
    return DetectedLanguage(language=best, top=top)


def resolve_language(text: str, declared: str | None = None) -> str | None:
    """The one rule set for a text's language, in training and serving alike:

    1. a declared language that is one of ours (the producer's, or a corpus's column)
       wins: py3langid errs on short texts, the producer knows;
    2. else the detected language, when the text is most likely in one of ours;
    3. else ``None``: another language (prepare drops the row; the service stores the
       result without a language rather than a wrong one).
    """
    if declared in LANGUAGES:
        return declared
    detected = detect_language(text)
    return detected.top if detected.supported else None
