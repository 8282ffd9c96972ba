"""Flagged result → moderator decision → exported training row → a prepare run reads it."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from depdetect.settings import REPO_ROOT
from services.results_query.feedback import COLUMNS, ORIGIN

pytestmark = pytest.mark.postgres

CONFIRMED = "Every morning I wake up and wonder why I should even bother getting out of bed."
REJECTED = "I am so tired of this weather, it rained again all weekend | but the match was fun."
ESCALATED = "I have given away my things and said goodbye to the people I love."
TRICKY = 'She wrote "never again"\nand left; the note said: a|b|c'


async def _decide(
    client: httpx.AsyncClient, headers: dict[str, str], rid: int, decision: str
) -> None:
    response = await client.post(
        f"/results/{rid}/decisions", json={"decision": decision}, headers=headers
    )
    assert response.status_code == 201, response.text


async def test_decisions_become_training_rows_that_prepare_reads(
    client: httpx.AsyncClient,
    moderator: dict[str, str],
    insert_result: Callable[..., int],
    cli: typer.Typer,
    tmp_path: Path,
    tag: str,
) -> None:
    confirmed = insert_result(text=CONFIRMED, language="en", source="forum")
    rejected = insert_result(text=REJECTED, language="en", source="chat")
    escalated = insert_result(text=ESCALATED, language="en")
    tricky = insert_result(text=TRICKY, language=None)
    insert_result(text="still pending, never exported")
    await _decide(client, moderator, confirmed, "confirmed_indicators")
    await _decide(client, moderator, rejected, "confirmed_indicators")
    await _decide(client, moderator, rejected, "not_indicators")  # the latest revision counts
    await _decide(client, moderator, escalated, "escalated")
    await _decide(client, moderator, tricky, "not_indicators")

    out = tmp_path / "feedback.csv"
    result = CliRunner().invoke(
        cli, ["feedback", "export", "--output", str(out), "--model-version", f"model-{tag}"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").splitlines()[0] == "|".join(COLUMNS)
    table = pd.read_csv(out, sep="|", dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    assert table.to_dict("records") == [
        {"text": CONFIRMED, "label": "1", "language": "en", "source": "forum", "origin": ORIGIN},
        {"text": REJECTED, "label": "0", "language": "en", "source": "chat", "origin": ORIGIN},
        {"text": TRICKY, "label": "0", "language": "", "source": f"src-{tag}", "origin": ORIGIN},
    ]

    # The training pipeline's prepare step (training/prepare/run.py) with the export as
    # one input of its own weight, next to the sample data.
    from training.config import PrepareConfig
    from training.prepare.run import prepare, read_split
    from training.prepare.tables import InputSpec

    sample = REPO_ROOT / "training" / "sample_data" / "sample.csv"
    prepared = prepare(
        [InputSpec(sample), InputSpec(out, weight=3.0)],
        tmp_path / "prepared",
        PrepareConfig(plots=False),
        log=False,
    )
    (entry,) = [i for i in prepared.inputs if i["name"] == out.name]
    assert (entry["rows"], entry["weight"]) == (3, 3.0)
    splits = pd.concat([read_split(prepared.directory, name) for name in prepared.rows])
    ours = splits[splits["origin"] == ORIGIN]
    row = ours[ours["text"] == CONFIRMED]
    assert len(row) == 1, ours
    assert (int(row["label"].iloc[0]), float(row["weight"].iloc[0])) == (1, 3.0)
    assert row["source"].iloc[0] == "forum"
    assert ESCALATED not in set(splits["text"])
