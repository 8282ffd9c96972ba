"""The service's AsyncAPI document, rendered from the app with default settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from depdetect.settings import Settings
from schemas.jsonschema import schema_for
from schemas.messages import SubmittedText

ASYNCAPI_FILE = Path(__file__).resolve().parent / "asyncapi.yaml"


def document() -> dict[str, Any]:
    from services.classifier.app import create_app

    # Default settings (not the environment), so that the committed file is reproducible.
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    doc: dict[str, Any] = app.schema.to_specification().to_jsonable()
    # The handler takes raw bytes (it validates them itself, to dead-letter bad ones), so
    # the generated payload says "bytes"; document the contract producers must meet.
    payload = schema_for(SubmittedText)
    for name, message in doc.get("components", {}).get("messages", {}).items():
        if name.startswith("submitted-texts"):
            message["payload"] = payload
    return doc


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=True, allow_unicode=True)


def export(path: Path = ASYNCAPI_FILE) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path
