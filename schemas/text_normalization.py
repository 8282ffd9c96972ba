"""Text normalisation shared by training and inference.

Social-media artefacts (mentions, links, hashtags, emoji) are nearly always in
"healthy" tweets of the training data, so a model can learn them as a shortcut.
Normalising them identically at training and serving time removes that cue. The
settings travel inside each model bundle so that the service applies exactly what
the model was trained with.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict

_URL = re.compile(r"(?:https?://|www\.)\S+|\bhttps?\b", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#(\w+)")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_SPACE = re.compile(r"\s+")


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
