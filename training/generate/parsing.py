"""Texts out of a model answer: JSON, possibly fenced, possibly followed by chatter."""

from __future__ import annotations

import json
import re
from typing import Any

from training.generate.errors import ResponseParseError

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def answer_text(message: Any) -> str:
    """The concatenated text blocks of a Messages API message (dict or SDK model)."""
    content = message.get("content") if isinstance(message, dict) else message.content
    parts: list[str] = []
    for block in content or ():
        kind = block.get("type") if isinstance(block, dict) else block.type
        if kind == "text":
            parts.append(str(block.get("text") if isinstance(block, dict) else block.text))
    return "".join(parts)


def parse_texts(answer: str) -> list[str]:
    """The list of texts in `answer`; raises ResponseParseError when there is none.

    Accepts {"texts": [...]} or a bare list, inside or outside a code fence, with
    leading or trailing prose. Non-string items are an error, not silently dropped.
    """
    candidates = [match.group(1) for match in _FENCE.finditer(answer)] + [answer]
    for candidate in candidates:
        value = _first_json_value(candidate)
        if value is None:
            continue
        texts = value.get("texts") if isinstance(value, dict) else value
        if not isinstance(texts, list):
            continue
        if not all(isinstance(text, str) for text in texts):
            raise ResponseParseError("the texts list holds values that are not strings")
        return texts
    raise ResponseParseError(f"no JSON list of texts in the answer: {answer[:120]!r}")


def _first_json_value(candidate: str) -> Any:
    """The first JSON object or array that decodes from some '{' or '[' onwards."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", candidate):
        try:
            value, _end = decoder.raw_decode(candidate, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict | list):
            return value
    return None
