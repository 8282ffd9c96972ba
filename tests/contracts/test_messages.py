"""Contract tests: valid messages round-trip; each kind of bad input is refused by name."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ContractError
from schemas.messages import (
    LANGUAGES,
    MESSAGE_MODELS,
    ClassificationResult,
    DeadLetter,
    Decision,
    Label,
    ModeratorDecision,
    ReviewRequest,
    SubmittedText,
    decode,
    encode,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

EXAMPLES = [
    SubmittedText(
        message_id="m-1",
        text="Je suis fatigué de tout.",
        source="forum",
        author_ref="a-9",
        language="fr",
        created_at=NOW,
        metadata={"thread": 4},
    ),
    ClassificationResult(
        message_id="m-1",
        score=0.93,
        label=Label.INDICATORS,
        threshold=0.6,
        model_version="m-abc",
        language="fr",
        submitted_at=NOW,
    ),
    ReviewRequest(
        message_id="m-1",
        result_id=7,
        score=0.93,
        threshold=0.6,
        model_version="m-abc",
        flagged_at=NOW,
        text="Je suis fatigué de tout.",
    ),
    ModeratorDecision(
        message_id="m-1",
        result_id=7,
        decision=Decision.CONFIRMED,
        moderator_id="mod-1",
        note="reached out",
    ),
    DeadLetter(
        reason="text: empty",
        error_type="ContractError",
        source_topic="t",
        source_partition=0,
        source_offset=3,
        payload_b64="e30=",
    ),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.kind)
def test_valid_messages_round_trip_through_json(message: object) -> None:
    assert type(message) in MESSAGE_MODELS
    again = decode(type(message), encode(message))  # type: ignore[arg-type]
    assert again == message


# Any Unicode text except NUL and lone surrogates, which the wire contract refuses.
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@given(
    text=st.text(_CHARS, min_size=1, max_size=300).filter(lambda s: s.strip()),
    language=st.sampled_from([None, *LANGUAGES]),
    source=st.text(_CHARS, min_size=1, max_size=50),
    meta=st.dictionaries(
        st.text(_CHARS, max_size=10), st.integers() | st.text(_CHARS, max_size=10), max_size=3
    ),
)
@settings(max_examples=150, deadline=None)
def test_any_valid_submitted_text_round_trips(
    text: str, language: str | None, source: str, meta: dict[str, object]
) -> None:
    msg = SubmittedText(
        message_id="m",
        text=text,
        language=language,
        source=source,  # type: ignore[arg-type]
        metadata=meta,
    )
    assert decode(SubmittedText, encode(msg)) == msg


def _payload(**fields: object) -> bytes:
    base: dict[str, object] = {"message_id": "m-1", "text": "hello there"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (_payload(text=""), "text", "empty"),
        (_payload(text="   \n\t"), "text", "empty"),
        (_payload(text="x" * 51), "text", "more than the maximum 50"),
        (_payload(text=42), "text", "valid string"),
        (_payload(message_id=...), "message_id", "Field required"),
        (_payload(message_id="has space"), "message_id", "pattern"),
        (_payload(language="xx"), "language", "'en'"),
        (_payload(schema_version=2), "schema_version", "unsupported schema_version 2"),
        (_payload(schema_version="one"), "schema_version", "valid integer"),
        (_payload(schema_version="1"), "schema_version", "valid integer"),
        (_payload(schema_version=1.0), "schema_version", "valid integer"),
        (_payload(schema_version=True), "schema_version", "valid integer"),
        (_payload(text="so tired \ud83d"), "text", "lone UTF-16 surrogate"),
        (_payload(text="\ude22\ud83d reversed"), "text", "lone UTF-16 surrogate"),
        (_payload(text="nul\x00byte"), "text", "NUL character"),
        (_payload(author_ref="a\x00"), "author_ref", "NUL character"),
        (_payload(metadata={"note": "\udfff"}), "metadata.note", "surrogate"),
        (_payload(created_at="yesterday"), "created_at", "datetime"),
        (_payload(unexpected=1), "unexpected", "Extra inputs"),
        (b"\xff\xfe{}", "payload", "not valid UTF-8"),
        (b"{not json", "payload", "not valid JSON"),
        (b"[1, 2]", "payload", "JSON object"),
        (b"[" * 100_000, "payload", "nests too deeply"),
    ],
)
def test_bad_submitted_text_is_refused_naming_the_problem(
    raw: bytes, field: str, fragment: str
) -> None:
    with pytest.raises(ContractError) as info:
        decode(SubmittedText, raw, max_text_chars=50)
    assert info.value.field == field
    assert fragment in str(info.value)
    if field != "payload":
        assert str(info.value).startswith(f"{field}:")


def test_an_escaped_surrogate_pair_is_one_character_and_accepted() -> None:
    msg = decode(SubmittedText, b'{"message_id": "m", "text": "so tired \\ud83d\\ude22"}')
    assert msg.text == "so tired \U0001f622"


@given(st.binary(min_size=1, max_size=64))
@settings(max_examples=200, deadline=None)
def test_arbitrary_bytes_never_raise_anything_but_contract_error(raw: bytes) -> None:
    try:
        decode(SubmittedText, raw)
    except ContractError as exc:
        reason = exc.reason
        assert reason


def test_result_label_must_agree_with_score_and_threshold() -> None:
    with pytest.raises(ValueError, match="contradicts score"):
        ClassificationResult(
            message_id="m",
            score=0.2,
            label=Label.INDICATORS,
            threshold=0.5,
            model_version="v",
            submitted_at=NOW,
        )


def test_score_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ContractError, match="score"):
        decode(
            ReviewRequest,
            json.dumps(
                {
                    "message_id": "m",
                    "result_id": 1,
                    "score": 1.5,
                    "threshold": 0.5,
                    "model_version": "v",
                    "flagged_at": NOW.isoformat(),
                }
            ),
        )


def test_unknown_decision_value_is_refused() -> None:
    with pytest.raises(ContractError, match="decision"):
        decode(
            ModeratorDecision,
            json.dumps(
                {"message_id": "m", "result_id": 1, "decision": "maybe", "moderator_id": "x"}
            ),
        )


def test_naive_timestamps_are_read_as_utc() -> None:
    msg = decode(SubmittedText, _payload(created_at="2026-01-02T03:04:05"))
    assert msg.created_at.tzinfo is not None
    assert msg.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
