"""`depdetect results|tokens|api …` against the real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
import typer
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from schemas.messages import utcnow
from services.api.openapi import DOCUMENT, render_openapi

pytestmark = pytest.mark.postgres

runner = CliRunner()


def _ok(cli: typer.Typer, *args: str) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_show_decide_stats(
    cli: typer.Typer,
    insert_result: Callable[..., int],
    tag: str,
) -> None:
    rid = insert_result(text="I can't get out of bed anymore and nothing helps.", language="en")
    insert_result(score=0.1)
    listed = json.loads(_ok(cli, "results", "list", "--source", f"src-{tag}", "--json"))
    assert listed["count"] == 2
    table = _ok(cli, "results", "list", "--source", f"src-{tag}", "--flagged")
    assert "1 of 1 results" in table and "I can't" in table

    decided = json.loads(
        _ok(
            cli,
            "results",
            "decide",
            str(rid),
            "confirmed_indicators",
            "--moderator",
            "alice",
            "--note",
            "clear",
            "--no-publish",
            "--json",
        )
    )
    assert (decided["revision"], decided["moderator_id"]) == (1, "alice")
    again = _ok(
        cli,
        "results",
        "decide",
        str(rid),
        "confirmed_indicators",
        "-m",
        "alice",
        "--note",
        "clear",
        "--no-publish",
    )
    assert "already recorded" in again
    shown = json.loads(_ok(cli, "results", "show", str(rid), "--json"))
    assert shown["decision"] == "confirmed_indicators"
    assert "nothing helps" in _ok(cli, "results", "show", str(rid))

    stats = json.loads(_ok(cli, "results", "stats", "--by", "language", "--json"))
    assert stats["flags"]["data"][0]["flagged"] == 1
    assert stats["outcomes"]["data"][0]["precision"] == 1.0
    assert "100.0%" in _ok(cli, "results", "stats")


@pytest.mark.parametrize(
    "args",
    [
        ["results", "show", "999999"],
        ["results", "list", "--since", "soon"],
        ["results", "list", "--min-score", "0.9", "--max-score", "0.1"],
        ["results", "decide", "999999", "escalated", "-m", "alice", "--no-publish"],
        ["results", "decide", "1", "maybe", "-m", "alice"],
        ["results", "stats", "--by", "week"],
        ["tokens", "create", "two words", "--role", "moderator"],
        ["tokens", "create", "bob", "--role", "root"],
        ["tokens", "revoke", "nobody"],
    ],
)
def test_bad_input_is_a_clear_error(cli: typer.Typer, args: list[str]) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


async def test_token_lifecycle(
    cli: typer.Typer,
    client: httpx.AsyncClient,
    sessions: sessionmaker[Session],
) -> None:
    secret = _ok(cli, "tokens", "create", "carol", "--role", "analyst").strip()
    assert secret.startswith("ddt_")
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/aggregates/flags", headers=headers)).status_code == 200
    assert (await client.get("/results", headers=headers)).status_code == 403
    listed = json.loads(_ok(cli, "tokens", "list", "--json"))
    assert [(t["name"], t["role"]) for t in listed] == [("carol", "analyst")]
    assert secret not in json.dumps(listed)
    assert "revoked token" in _ok(cli, "tokens", "revoke", "carol")
    assert (await client.get("/aggregates/flags", headers=headers)).status_code == 401
    assert json.loads(_ok(cli, "tokens", "list", "--json")) == []
    assert json.loads(_ok(cli, "tokens", "list", "--all", "--json"))[0]["revoked_at"]


def test_purge_deletes_old_rows_with_their_decisions(
    cli: typer.Typer,
    insert_result: Callable[..., int],
    tag: str,
) -> None:
    old = insert_result(classified_at=utcnow() - timedelta(days=100))
    insert_result(classified_at=utcnow() - timedelta(days=1))
    _ok(cli, "results", "decide", str(old), "escalated", "-m", "alice", "--no-publish")
    assert "1 results" in _ok(cli, "results", "purge", "--older-than-days", "90", "--dry-run")
    assert "deleted 1 results" in _ok(cli, "results", "purge", "--older-than-days", "90", "--yes")
    listed = json.loads(_ok(cli, "results", "list", "--source", f"src-{tag}", "--json"))
    assert listed["count"] == 1


def test_openapi_document_in_the_repo_is_current(cli: typer.Typer) -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render_openapi(), "run `depdetect api openapi`"
    assert "is current" in _ok(cli, "api", "openapi", "--check")
    paths = json.loads(DOCUMENT.read_text(encoding="utf-8"))["paths"]
    assert set(paths) == {
        "/health",
        "/results",
        "/results/{result_id}",
        "/results/{result_id}/decisions",
        "/aggregates/flags",
        "/aggregates/outcomes",
        "/aggregates/scores",
        "/aggregates/reviews",
    }
