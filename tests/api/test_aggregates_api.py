"""Analysts' figures: flag counts and rates, and moderators' verdicts per model version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from depdetect.settings import Settings, StorageSettings, StoreUnflagged
from tests.api.support import T0

pytestmark = pytest.mark.postgres


def _seed(insert_result: Callable[..., int]) -> dict[str, int]:
    day2 = T0 + timedelta(days=1)
    return {
        "a1": insert_result(score=0.9, language="en", source="forum", model_version="m1"),
        "a2": insert_result(score=0.8, language="de", source="forum", model_version="m1"),
        "a3": insert_result(score=0.1, language="en", source="chat", model_version="m1"),
        "b1": insert_result(
            score=0.7, language="en", source="chat", model_version="m2", classified_at=day2
        ),
        "b2": insert_result(
            score=0.2, language="en", source="chat", model_version="m2", classified_at=day2
        ),
    }


async def test_flag_counts_and_rates_by_each_dimension(
    app_client_factory: Callable[..., Any],
    settings: Settings,
    analyst: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    _seed(insert_result)
    scored = settings.model_copy(
        update={"storage": StorageSettings(store_unflagged=StoreUnflagged.SCORE)}
    )
    async with app_client_factory(app_settings=scored) as client:
        by_day = (await client.get("/aggregates/flags", headers=analyst)).json()
        assert by_day["data"] == [
            {
                "day": "2026-03-01",
                "language": None,
                "source": None,
                "model_version": None,
                "classified": 3,
                "flagged": 2,
                "flag_rate": pytest.approx(2 / 3),
            },
            {
                "day": "2026-03-02",
                "language": None,
                "source": None,
                "model_version": None,
                "classified": 2,
                "flagged": 1,
                "flag_rate": 0.5,
            },
        ]
        combined = (
            await client.get(
                "/aggregates/flags", params={"by": ["model_version", "language"]}, headers=analyst
            )
        ).json()
        assert [
            (r["model_version"], r["language"], r["classified"], r["flagged"])
            for r in combined["data"]
        ] == [("m1", "de", 1, 1), ("m1", "en", 2, 1), ("m2", "en", 2, 1)]
        by_source = (
            await client.get(
                "/aggregates/flags", params={"by": "source", "model_version": "m1"}, headers=analyst
            )
        ).json()
        assert [(r["source"], r["flag_rate"]) for r in by_source["data"]] == [
            ("chat", 0.0),
            ("forum", 1.0),
        ]


async def test_no_rate_without_a_denominator(
    client: httpx.AsyncClient,
    analyst: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    insert_result(score=0.9)
    body = (
        await client.get("/aggregates/flags", params={"by": "language"}, headers=analyst)
    ).json()
    assert body["data"][0]["flag_rate"] is None
    assert body["count"] == 1


async def test_outcomes_give_precision_per_model_version(
    client: httpx.AsyncClient,
    analyst: dict[str, str],
    moderator: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    ids = _seed(insert_result)
    extra = insert_result(score=0.95, model_version="m1")
    for rid, decision in [
        (ids["a1"], "confirmed_indicators"),
        (ids["a2"], "confirmed_indicators"),
        (ids["a2"], "not_indicators"),
        (extra, "escalated"),
        (ids["b1"], "confirmed_indicators"),
    ]:
        response = await client.post(
            f"/results/{rid}/decisions", json={"decision": decision}, headers=moderator
        )
        assert response.status_code == 201
    body = (await client.get("/aggregates/outcomes", headers=analyst)).json()
    assert body == {
        "count": 2,
        "data": [
            {
                "model_version": "m1",
                "flagged": 3,
                "pending": 0,
                "decided": 3,
                "confirmed": 1,
                "not_indicators": 1,
                "escalated": 1,
                "precision": 0.5,
            },
            {
                "model_version": "m2",
                "flagged": 1,
                "pending": 0,
                "decided": 1,
                "confirmed": 1,
                "not_indicators": 0,
                "escalated": 0,
                "precision": 1.0,
            },
        ],
    }
    day1 = (
        await client.get("/aggregates/outcomes", params={"until": "2026-03-02"}, headers=analyst)
    ).json()
    assert [r["model_version"] for r in day1["data"]] == ["m1"]
