"""Export the message contracts as JSON Schema files for producers in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.messages import MESSAGE_MODELS, ContractModel

JSON_SCHEMA_DIR = Path(__file__).resolve().parent / "json"


def schema_for(model: type[ContractModel]) -> dict[str, object]:
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://depdetect.example/schemas/{model.kind}.schema.json"
    return schema


def render(model: type[ContractModel]) -> str:
    return json.dumps(schema_for(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = JSON_SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in MESSAGE_MODELS:
        path = directory / f"{model.kind}.schema.json"
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written
