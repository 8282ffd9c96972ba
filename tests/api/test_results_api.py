"""Listing, filtering, paging and fetching results; bad input gets a clear 4xx."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.support import T0

pytestmark = pytest.mark.postgres


async def test_lists_only_matching_rows_with_text_for_moderators(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    tag: str,
) -> None:
    ids = [insert_result(score=0.9, language="de", text="Ich bin so müde von allem.")]
    ids.append(insert_result(score=0.2))
    response = await client.get("/results", params={"source": f"src-{tag}"}, headers=moderator)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert {r["id"] for r in body["data"]} == set(ids)
    flagged = next(r for r in body["data"] if r["id"] == ids[0])
    assert flagged["text"] == "Ich bin so müde von allem."
    assert flagged["review_status"] == "pending"
    assert flagged["decision"] is None
    assert flagged["classified_at"].startswith("2026-03-01T12:00:00")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"language": "fr"}, {"fr"}),
        ({"min_score": 0.7}, {"high", "fr"}),
        ({"min_score": 0.5, "max_score": 0.8}, {"fr"}),
        ({"flagged": "false"}, {"low"}),
        ({"review_status": "pending"}, {"high", "fr"}),
        ({"since": "2026-03-01T12:01:00Z"}, {"fr", "low"}),
        ({"until": "2026-03-01T12:01:00+00:00"}, {"high"}),
        ({"since": "2026-03-01T13:01:00+01:00", "until": "2026-03-01T12:02:00"}, {"fr"}),
    ],
)
async def test_filters(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    tag: str,
    params: dict[str, object],
    expected: set[str],
) -> None:
    names = {
        insert_result(score=0.95, message_id=f"high-{tag}"): "high",
        insert_result(score=0.75, language="fr", message_id=f"fr-{tag}"): "fr",
        insert_result(score=0.1, message_id=f"low-{tag}"): "low",
    }
    response = await client.get(
        "/results", params={"source": f"src-{tag}", **params}, headers=moderator
    )
    assert response.status_code == 200, response.text
    assert {names[r["id"]] for r in response.json()["data"]} == expected


async def test_filters_by_model_version_and_latest_decision(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    tag: str,
) -> None:
    old = insert_result(model_version=f"old-{tag}")
    new = insert_result(model_version=f"new-{tag}")
    response = await client.get(
        "/results", params={"model_version": f"old-{tag}"}, headers=moderator
    )
    assert [r["id"] for r in response.json()["data"]] == [old]
    await client.post(
        f"/results/{new}/decisions", json={"decision": "escalated"}, headers=moderator
    )
    response = await client.get(
        "/results", params={"source": f"src-{tag}", "decision": "escalated"}, headers=moderator
    )
    assert [r["id"] for r in response.json()["data"]] == [new]
    assert response.json()["data"][0]["decision"] == "escalated"
    response = await client.get(
        "/results",
        params={"source": f"src-{tag}", "review_status": "decided"},
        headers=moderator,
    )
    assert [r["id"] for r in response.json()["data"]] == [new]


async def test_pagination_covers_every_row_once_in_order(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    tag: str,
) -> None:
    ids = [insert_result() for _ in range(7)]
    seen: list[int] = []
    for offset in range(0, 9, 3):
        response = await client.get(
            "/results",
            params={"source": f"src-{tag}", "limit": 3, "offset": offset, "order": "oldest"},
            headers=moderator,
        )
        body = response.json()
        assert body["count"] == 7
        seen += [r["id"] for r in body["data"]]
    assert seen == ids
    newest = await client.get(
        "/results", params={"source": f"src-{tag}", "limit": 2}, headers=moderator
    )
    assert [r["id"] for r in newest.json()["data"]] == ids[::-1][:2]


async def test_fetch_one_with_history(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
) -> None:
    rid = insert_result(author_ref="author-7")
    response = await client.get(f"/results/{rid}", headers=moderator)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == rid
    assert body["author_ref"] == "author-7"
    assert body["decisions"] == []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/results", {"limit": 0}),
        ("/results", {"limit": 501}),
        ("/results", {"limit": "ten"}),
        ("/results", {"offset": -1}),
        ("/results", {"since": "yesterday"}),
        ("/results", {"since": "2026-02-30T00:00:00"}),
        ("/results", {"since": "2026-03-02", "until": "2026-03-01"}),
        ("/results", {"min_score": 1.5}),
        ("/results", {"min_score": "nan"}),
        ("/results", {"min_score": 0.9, "max_score": 0.1}),
        ("/results", {"review_status": "done"}),
        ("/results", {"decision": "maybe"}),
        ("/results", {"flagged": "perhaps"}),
        ("/results", {"language": "english language"}),
        ("/results", {"source": "a\x00b"}),
        ("/results", {"source": "x" * 201}),
        ("/results", {"order": "random"}),
        ("/results", {"min_scor": 0.5}),
        ("/results/0", {}),
        ("/results/-3", {}),
        ("/results/abc", {}),
        (f"/results/{2**63}", {}),
        ("/aggregates/flags", {"by": "week"}),
        ("/aggregates/outcomes", {"since": "not-a-date"}),
    ],
)
async def test_malformed_requests_get_a_clear_422(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    path: str,
    params: dict[str, object],
) -> None:
    response = await client.get(path, params=params, headers=admin)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_unknown_result_is_404(client: httpx.AsyncClient, moderator: dict[str, str]) -> None:
    for path in (f"/results/{2**62}", f"/results/{2**62}/decisions"):
        response = await client.get(path, headers=moderator)
        assert response.status_code == 404
        assert response.json() == {"detail": f"result {2**62} does not exist"}


_text = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "since",
                "until",
                "language",
                "source",
                "model_version",
                "min_score",
                "max_score",
                "flagged",
                "review_status",
                "decision",
                "limit",
                "offset",
                "order",
                "extra",
            ]
        ),
        _text,
        max_size=4,
    )
)
async def test_no_query_string_makes_a_500(
    client: httpx.AsyncClient, moderator: dict[str, str], params: dict[str, str]
) -> None:
    response = await client.get("/results", params=params, headers=moderator)
    assert response.status_code in (200, 422), (params, response.text)


async def test_times_are_utc_whatever_zone_is_asked(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    tag: str,
) -> None:
    rid = insert_result(classified_at=T0 + timedelta(hours=5))
    response = await client.get(
        "/results",
        params={"source": f"src-{tag}", "since": "2026-03-01T18:59:00+02:00"},
        headers=moderator,
    )
    assert [r["id"] for r in response.json()["data"]] == [rid]
