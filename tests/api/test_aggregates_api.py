"""Analysts' figures: flag counts and rates, moderators' verdicts per model version, score
drift and review times; cells of fewer than k items are suppressed.

The tests of the figures themselves set k to 1 (nothing suppressed), so that a handful of
rows can pin every value; the suppression tests use the default k and a small one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from depdetect.settings import ConsoleSettings, Settings, StorageSettings, StoreUnflagged
from tests.api.support import T0

pytestmark = pytest.mark.postgres


def _with_k(settings: Settings, k: int, **update: Any) -> Settings:
    return settings.model_copy(update={"console": ConsoleSettings(min_cell_size=k), **update})


@pytest.fixture
async def k1_client(app_client_factory: Callable[..., Any], settings: Settings) -> Any:
    async with app_client_factory(app_settings=_with_k(settings, 1)) as client:
        yield client


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
    scored = _with_k(settings, 1, storage=StorageSettings(store_unflagged=StoreUnflagged.SCORE))
    async with app_client_factory(app_settings=scored) as client:
        by_day = (await client.get("/aggregates/flags", headers=analyst)).json()
        assert by_day["data"] == [
            {
                "day": "2026-03-01",
                "language": None,
                "source": None,
                "model_version": None,
                "suppressed": False,
                "classified": 3,
                "flagged": 2,
                "flag_rate": pytest.approx(2 / 3),
            },
            {
                "day": "2026-03-02",
                "language": None,
                "source": None,
                "model_version": None,
                "suppressed": False,
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
    k1_client: httpx.AsyncClient,
    analyst: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    insert_result(score=0.9)
    body = (
        await k1_client.get("/aggregates/flags", params={"by": "language"}, headers=analyst)
    ).json()
    assert body["data"][0]["flagged"] == 1
    assert body["data"][0]["flag_rate"] is None
    assert body["count"] == 1


async def test_outcomes_give_precision_per_model_version(
    k1_client: httpx.AsyncClient,
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
        response = await k1_client.post(
            f"/results/{rid}/decisions", json={"decision": decision}, headers=moderator
        )
        assert response.status_code == 201
    body = (await k1_client.get("/aggregates/outcomes", headers=analyst)).json()
    assert body == {
        "count": 2,
        "data": [
            {
                "model_version": "m1",
                "language": None,
                "suppressed": False,
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
                "language": None,
                "suppressed": False,
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
        await k1_client.get("/aggregates/outcomes", params={"until": "2026-03-02"}, headers=analyst)
    ).json()
    assert [r["model_version"] for r in day1["data"]] == ["m1"]
    by_language = (
        await k1_client.get("/aggregates/outcomes", params={"by_language": True}, headers=analyst)
    ).json()
    assert [(r["model_version"], r["language"], r["precision"]) for r in by_language["data"]] == [
        ("m1", "de", 0.0),
        ("m1", "en", 1.0),
        ("m2", "en", 1.0),
    ]


async def test_small_cells_are_suppressed_in_every_aggregate(
    app_client_factory: Callable[..., Any],
    settings: Settings,
    analyst: dict[str, str],
    moderator: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    """k = 3: English has 3 flags (shown), German 2 (withheld), whatever the endpoint."""
    now = datetime.now(UTC)
    english = [
        insert_result(score=0.9, language="en", classified_at=now - timedelta(hours=h))
        for h in (1, 2, 3)
    ]
    german = [
        insert_result(score=0.9, language="de", classified_at=now - timedelta(hours=h))
        for h in (1, 2)
    ]
    async with app_client_factory(app_settings=_with_k(settings, 3)) as client:
        flags = (
            await client.get("/aggregates/flags", params={"by": "language"}, headers=analyst)
        ).json()["data"]
        assert [(r["language"], r["suppressed"], r["flagged"]) for r in flags] == [
            ("de", True, None),
            ("en", False, 3),
        ]
        assert flags[0]["classified"] is None and flags[0]["flag_rate"] is None

        for rid in english + german:
            response = await client.post(
                f"/results/{rid}/decisions",
                json={"decision": "confirmed_indicators"},
                headers=moderator,
            )
            assert response.status_code == 201
        outcomes = (
            await client.get("/aggregates/outcomes", params={"by_language": True}, headers=analyst)
        ).json()["data"]
        assert [(r["language"], r["suppressed"], r["precision"]) for r in outcomes] == [
            ("de", True, None),
            ("en", False, 1.0),
        ]
        assert all(outcomes[0][f] is None for f in ("flagged", "confirmed", "pending"))

        scores = (await client.get("/aggregates/scores", headers=analyst)).json()
        top = scores["bins"][-1]
        assert (top["low"], top["current"], top["previous"]) == (0.9, 5, 0)
        german_scores = (
            await client.get("/aggregates/scores", params={"language": "de"}, headers=analyst)
        ).json()
        assert german_scores["bins"][-1]["current"] is None  # 2 < k

        reviews = (await client.get("/aggregates/reviews", headers=analyst)).json()
        assert reviews["pending"] == 0 and not reviews["suppressed"]
        assert [(d["reviewed"], d["suppressed"]) for d in reviews["days"]] == [(5, False)]
        german_reviews = (
            await client.get("/aggregates/reviews", params={"language": "de"}, headers=analyst)
        ).json()
        assert german_reviews["days"][0]["suppressed"] is True
        assert german_reviews["days"][0]["median_hours"] is None


async def test_default_k_is_ten(
    client: httpx.AsyncClient, analyst: dict[str, str], insert_result: Callable[..., int]
) -> None:
    for _ in range(9):
        insert_result(score=0.9, language="en")
    for _ in range(10):
        insert_result(score=0.9, language="fr")
    flags = (
        await client.get("/aggregates/flags", params={"by": "language"}, headers=analyst)
    ).json()["data"]
    assert [(r["language"], r["flagged"]) for r in flags] == [("en", None), ("fr", 10)]


async def test_drift_windows_and_review_times(
    k1_client: httpx.AsyncClient,
    analyst: dict[str, str],
    moderator: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    until = T0 + timedelta(days=14)
    # Previous week: middling scores; this week: a high one; 20 days back is in neither.
    insert_result(score=0.55, classified_at=until - timedelta(days=8))
    insert_result(score=0.62, classified_at=until - timedelta(days=9))
    insert_result(score=0.97, classified_at=until - timedelta(days=1))
    insert_result(score=0.2, threshold=0.1, classified_at=until - timedelta(days=20))  # outside
    drift = (
        await k1_client.get(
            "/aggregates/scores",
            params={"days": 7, "bins": 5, "until": until.isoformat()},
            headers=analyst,
        )
    ).json()
    assert [(b["low"], b["previous"], b["current"]) for b in drift["bins"]] == [
        (0.0, 0, 0),
        (0.2, 0, 0),
        (0.4, 1, 0),
        (0.6, 1, 0),
        (0.8, 0, 1),
    ]
    insert_result(score=0.9, classified_at=T0)
    decided = insert_result(score=0.9, classified_at=datetime.now(UTC) - timedelta(hours=5))
    response = await k1_client.post(
        f"/results/{decided}/decisions", json={"decision": "not_indicators"}, headers=moderator
    )
    assert response.status_code == 201
    reviews = (
        await k1_client.get(
            "/aggregates/reviews",
            params={"since": (T0 - timedelta(hours=1)).isoformat()},
            headers=analyst,
        )
    ).json()
    # In scope (since T0 - 1h): the three drift rows in the windows and the T0 row wait.
    assert reviews["pending"] == 4
    assert reviews["oldest_pending_hours"] > 24
    assert len(reviews["days"]) == 1
    assert reviews["days"][0]["reviewed"] == 1
    assert reviews["days"][0]["median_hours"] == pytest.approx(5, abs=0.1)
