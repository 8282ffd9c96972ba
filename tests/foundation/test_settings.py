"""The settings object reads DEPDETECT_* variables, nested with '__'."""

from __future__ import annotations

import pytest

from depdetect.settings import Settings, StoreUnflagged


def test_environment_overrides_nested_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPDETECT_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("DEPDETECT_KAFKA__INPUT_TOPICS", "a, b")
    monkeypatch.setenv("DEPDETECT_DATABASE__URL", "postgresql://u:p@h/db")
    monkeypatch.setenv("DEPDETECT_STORAGE__STORE_UNFLAGGED", "score")
    monkeypatch.setenv("DEPDETECT_MODEL__THRESHOLD", "0.7")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert s.kafka.input_topics == ["a", "b"]
    assert s.database.url == "postgresql+psycopg://u:p@h/db"
    assert s.storage.store_unflagged is StoreUnflagged.SCORE
    assert s.model.threshold == 0.7


def test_defaults_are_embedded_and_least_sensitive() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.database.url.startswith("sqlite:///")
    assert s.storage.store_unflagged is StoreUnflagged.NOTHING


def test_invalid_values_are_refused_with_the_field_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPDETECT_MODEL__THRESHOLD", "1.5")
    with pytest.raises(ValueError, match="threshold"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_secrets_are_masked_when_dumped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPDETECT_ANTHROPIC__API_KEY", "sk-secret")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "sk-secret" not in s.model_dump_json()
    assert s.anthropic.api_key is not None
    assert s.anthropic.api_key.get_secret_value() == "sk-secret"
