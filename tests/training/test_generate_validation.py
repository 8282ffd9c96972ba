"""Parsing model answers and validating generated texts."""

from __future__ import annotations

import pytest

from schemas.text import dedup_key
from training.generate.config import Bucket
from training.generate.errors import ResponseParseError
from training.generate.parsing import answer_text, parse_texts
from training.generate.validation import Reason, TextValidator, word_count

BUCKET = Bucket(min_words=9, max_words=15, share=1.0)
SPANISH = "hoy caminé hasta el mercado con mi hermana y hablamos de la semana"
ENGLISH = "today I walked to the market with my sister and we talked about it"


@pytest.mark.parametrize(
    "answer",
    [
        '{"texts": ["uno", "dos"]}',
        '["uno", "dos"]',
        '```json\n{"texts": ["uno", "dos"]}\n```',
        '```\n{"texts": ["uno", "dos"]}\n```\nHope these help!',
        'Here you go:\n{"texts": ["uno", "dos"]}\nLet me know if you need more.',
        '{"texts": ["uno", "dos"]} {"note": "trailing object"}',
    ],
)
def test_parse_accepts_fences_and_surrounding_prose(answer: str) -> None:
    assert parse_texts(answer) == ["uno", "dos"]


@pytest.mark.parametrize(
    "answer",
    [
        '{"texts": ["uno", "dos"',
        "I cannot help with that.",
        '{"items": "not a list"}',
        '{"texts": ["uno", 2]}',
        "",
    ],
)
def test_parse_rejects_broken_or_missing_json(answer: str) -> None:
    with pytest.raises(ResponseParseError):
        parse_texts(answer)


def test_answer_text_joins_text_blocks_only() -> None:
    message = {
        "content": [
            {"type": "thinking", "thinking": "…"},
            {"type": "text", "text": '{"texts": '},
            {"type": "text", "text": '["a"]}'},
        ]
    }
    assert parse_texts(answer_text(message)) == ["a"]


def test_validator_accepts_a_text_of_the_right_language_and_length() -> None:
    verdict = TextValidator(0.15).check(f"  {SPANISH}  ", language="es", bucket=BUCKET)
    assert verdict.accepted
    assert verdict.text == SPANISH
    assert verdict.word_count == 13
    assert verdict.detected_language == "es"


def test_validator_names_the_reason() -> None:
    validator = TextValidator(0.15)
    assert validator.check("   ", language="es", bucket=BUCKET).reason is Reason.EMPTY
    short = validator.check("hoy caminé mucho", language="es", bucket=BUCKET)
    assert (short.reason, short.word_count) == (Reason.TOO_SHORT, 3)
    long = validator.check(f"{SPANISH} {SPANISH}", language="es", bucket=BUCKET)
    assert long.reason is Reason.TOO_LONG
    wrong = validator.check(ENGLISH, language="es", bucket=BUCKET)
    assert (wrong.reason, wrong.detected_language) == (Reason.WRONG_LANGUAGE, "en")


def test_tolerance_widens_the_bucket() -> None:
    # 9-15 words with 15 % tolerance accepts 7..18 words; 0 tolerance only 9..15.
    seventeen = f"{SPANISH} y fue muy bonito"
    assert word_count(seventeen) == 17
    assert TextValidator(0.15).check(seventeen, language="es", bucket=BUCKET).accepted
    strict = TextValidator(0.0).check(seventeen, language="es", bucket=BUCKET)
    assert strict.reason is Reason.TOO_LONG
    assert BUCKET.allowed(0.15) == (7, 18)


def test_dedup_key_ignores_case_spacing_and_punctuation() -> None:
    assert dedup_key("Hoy,  caminé hasta el Mercado!") == dedup_key("hoy caminé hasta el mercado")
    assert dedup_key("hoy caminé") != dedup_key("hoy camine mucho")
