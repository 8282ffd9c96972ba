"""The exported JSON Schema files are current and agree with the Python contracts."""

from __future__ import annotations

import json

import jsonschema
import pytest

from schemas.jsonschema import JSON_SCHEMA_DIR, render
from schemas.messages import MESSAGE_MODELS, SubmittedText


@pytest.mark.parametrize("model", MESSAGE_MODELS, ids=lambda m: m.kind)
def test_committed_schema_matches_the_contract(model: type) -> None:
    path = JSON_SCHEMA_DIR / f"{model.kind}.schema.json"
    assert path.exists(), f"{path} missing: run `depdetect schemas export`"
    assert path.read_text(encoding="utf-8") == render(model), (
        f"{path.name} is stale: run `depdetect schemas export`"
    )


def test_a_producer_validating_with_json_schema_agrees_with_python() -> None:
    schema = json.loads((JSON_SCHEMA_DIR / "submitted_text.schema.json").read_text())
    good = SubmittedText(message_id="m1", text="ok", language="de").model_dump(mode="json")
    jsonschema.validate(good, schema)
    for bad in ({**good, "language": "xx"}, {**good, "extra": 1}, {"text": "no id"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
