"""The OpenAPI document, generated from the app and kept in the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.openapi.utils import get_openapi

from depdetect.settings import Settings
from services.api.app import create_app

DOCUMENT = Path(__file__).with_name("openapi.json")


def openapi_document() -> dict[str, Any]:
    # Default settings: the document must not depend on who generates it.
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    return get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
