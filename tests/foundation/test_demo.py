"""The README's main job (`depdetect demo`) end to end on the real broker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from depdetect.demo import DEMO_STREAM
from depdetect.settings import KafkaSettings
from services.inference.runner import ModelRunner
from tests.service.harness import free_port

pytestmark = pytest.mark.kafka


def _row(output: str, label: str) -> int:
    match = re.search(rf"{re.escape(label)}\s*│\s*(\d+)", output)
    assert match, f"no row {label!r} in:\n{output}"
    return int(match.group(1))


def test_demo_streams_the_sample_and_summarises(
    kafka_settings: KafkaSettings,
    tiny_bundle: Path,
    sqlite_url: str,
    make_settings,  # type: ignore[no-untyped-def]
) -> None:
    # Threshold = the median score of the demo stream: a tiny model's own tuned threshold
    # (~0.99) may flag nothing, and this test is about the pipeline, not accuracy.
    texts = [json.loads(line)["text"] for line in DEMO_STREAM.read_text().splitlines()]
    scores = sorted(s.score for s in ModelRunner.from_bundle(tiny_bundle).score(texts))
    settings = make_settings(
        database={"url": sqlite_url},
        model={"bundle_path": tiny_bundle, "threshold": scores[len(scores) // 2]},
    )
    env = {**os.environ, **settings.to_env(), "COLUMNS": "120"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "depdetect"), "demo", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "reused" in out, "the configured bundle is used, not retrained"
    assert _row(out, "texts published") == 48
    assert _row(out, "malformed records published") == 3
    assert _row(out, "texts classified") == 48
    assert _row(out, "dead-lettered (with reason)") == 3
    flagged = _row(out, "flagged for review")
    assert 0 < flagged < 48
    assert _row(out, "review events on the broker") == flagged
    assert out.count("dead letter:") == 3
    assert "never a diagnosis" in out
    assert "could not be read" not in out
