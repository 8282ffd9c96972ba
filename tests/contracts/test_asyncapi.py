"""The committed AsyncAPI document is the one the service generates."""

from __future__ import annotations

import yaml

from services.classifier.asyncapi import ASYNCAPI_FILE, render


def test_committed_asyncapi_is_current() -> None:
    assert ASYNCAPI_FILE.read_text(encoding="utf-8") == render(), (
        "stale: run `depdetect schemas asyncapi`"
    )


def test_asyncapi_names_every_channel_and_the_input_contract() -> None:
    doc = yaml.safe_load(render())
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"texts.submitted", "texts.review-requests", "texts.dead-letter"} <= addresses
    payload = doc["components"]["messages"]["submitted-texts:SubscribeMessage"]["payload"]
    assert "text" in payload["required"] and "message_id" in payload["required"]
