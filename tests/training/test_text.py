"""One text module (schemas.text) for training and serving: languages, detection,
normalisation, dedup key; and the same token ids for a text in training and the service."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from schemas.text import (
    LANGUAGES,
    NormalizationSettings,
    dedup_key,
    detect_language,
    normalize_text,
    resolve_language,
)

pytestmark = pytest.mark.training

LONG = " ".join(["Ich fühle mich seit Wochen leer und müde, nichts hat mehr Sinn."] * 60)
TEXTS = [
    "I feel empty and hopeless every single day.",
    "Ich bin heute so müde und nichts hat mehr einen Sinn.",
    "Je me sens vide depuis des semaines, plus rien ne compte.",
    "Mi sento vuoto e stanco, niente ha più senso.",
    "Sinto-me vazio e cansado, nada faz sentido.",
    "Me siento vacío y sin esperanza todos los días.",
    LONG,
    "Lovely walk in the park 😍🌳👍🏽 with @anna_b #sunday #blessed",
    "check this https://example.org/a?b=c and www.example.com/x now!!!",
    "Caf\u0065\u0301 na praça \\u00e9 bom \u200d\u2764\ufe0f",  # decomposed accent, escape, ZWJ
    "  tabs\tand\nnewlines\u00a0and nbsp  ",
    "@user http://t.co/xyz",  # nothing left after normalisation
    "我很难过 😢 but still here",
]


def test_the_contract_and_training_share_one_language_list() -> None:
    from schemas.messages import SubmittedText

    annotation = SubmittedText.model_fields["language"].annotation
    (literal, _none) = get_args(annotation)
    assert get_args(literal) == LANGUAGES


def test_one_detector_one_rule_set() -> None:
    assert detect_language("Ich bin heute so müde und nichts hat mehr einen Sinn.").top == "de"
    # Links, mentions and emoji are removed before detection: they are not a language.
    assert resolve_language("@maria_lopez 😢😢 me siento muy sola https://t.co/x") == "es"
    # A declared supported language wins (py3langid errs on short texts) ...
    assert resolve_language("ok", "pt") == "pt"
    # ... an unsupported declaration does not; another language gives no language.
    assert resolve_language("Я очень устал сегодня, ничего не хочется", "ru") is None
    russian = detect_language("Я очень устал сегодня, ничего не хочется")
    assert not russian.supported and russian.language in LANGUAGES


@pytest.mark.parametrize(
    "text",
    [
        "Ich bin heute so müde und nichts hat mehr einen Sinn.",
        "je suis fatiguée",
        "ok",
        "Я очень устал сегодня, ничего не хочется",
        "我今天很累",
        "Mi sento vuoto da settimane https://x.y @luca",
        "",
    ],
)
def test_the_detector_is_py3langids_full_ranking(text: str) -> None:
    # The fast path (one classify() when the top is ours) must give what ranking every
    # language gives: the top, and the first of ours in that ranking.
    from schemas.text import _identifier

    ranking = [str(code) for code, _ in _identifier().rank(normalize_text(text))]
    detected = detect_language(text)
    assert detected.top == ranking[0]
    assert detected.language == next(code for code in ranking if code in LANGUAGES)


def test_dedup_key_ignores_what_normalisation_and_case_ignore() -> None:
    assert dedup_key("Hoy,  caminé hasta el Mercado! @ana https://x.y") == dedup_key(
        "hoy caminé hasta el mercado"
    )
    assert dedup_key("Cafe\u0301") == dedup_key("Café")  # NFKC composes accents
    assert dedup_key("hoy caminé") != dedup_key("hoy camine mucho")


def test_normalisation_drops_artefacts_and_keeps_words() -> None:
    text = "Feeling down 😞 @bob see https://x.org #sad \\u00e9t\\u00e9"
    assert normalize_text(text) == "Feeling down see sad été"
    keep = NormalizationSettings(drop_emoji=False, drop_mentions=False)
    assert "😞" in normalize_text(text, keep) and "@bob" in normalize_text(text, keep)


def test_a_text_gets_the_same_token_ids_in_training_and_in_the_service(tiny_run) -> None:  # type: ignore[no-untyped-def]
    """Training's dataset path (``encode_texts``, the fine-tuned model directory's
    tokenizer) and the service's (``ModelRunner.encode`` on the bundle's tokenizer.json)
    give identical ids: languages, a text past max length, emoji, links, escapes."""
    from schemas.bundle import read_manifest
    from services.inference.runner import ModelRunner
    from training.finetune.data import encode_texts
    from training.tokenizer_loading import load_tokenizer

    bundle: Path = tiny_run.exported.bundle_dir
    manifest = read_manifest(bundle)
    runner = ModelRunner.from_bundle(bundle)
    trained = encode_texts(
        TEXTS,
        load_tokenizer(tiny_run.finetuned.model_dir),
        manifest.max_sequence_length,
        tiny_run.finetuned.normalization,
    )
    served = [encoding.ids for encoding in runner.encode(TEXTS)]
    assert manifest.normalization == tiny_run.finetuned.normalization
    assert len(served[TEXTS.index(LONG)]) == manifest.max_sequence_length  # truncated
    for text, train_ids, serve_ids in zip(TEXTS, trained, served, strict=True):
        assert train_ids == serve_ids, text[:40]
