"""benchmarks/bench_service.py end to end on the tiny bundle, the real broker and a SQLite
file: every phase prints its figure and whose CPU filled the cores, the summary has a row
per member count, the plot is written (the figures themselves are measured, never
asserted, beyond being figures)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka]

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_service.py"
PHASES = ("drain (quiet):", "live:", "loaded (under load):", "latency at")


def test_bench_service_prints_every_phase(
    tiny_bundle: Path, kafka_bootstrap: str, tmp_path: Path
) -> None:
    texts = tmp_path / "texts.csv"
    with texts.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text"])
        writer.writerows([f"I have felt tired and low for {i} days now"] for i in range(30))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPDETECT_")}
    env["DEPDETECT_KAFKA__BOOTSTRAP_SERVERS"] = kafka_bootstrap
    plot = tmp_path / "latency.png"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--bundle",
            str(tiny_bundle),
            "--texts",
            str(texts),
            "--n",
            "40",
            "--members",
            "1",
            "--partitions",
            "2",
            "--plot",
            str(plot),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for phase in PHASES:
        assert sum(line.strip().startswith(phase) for line in out.splitlines()) == 1, phase
    # One CPU line per phase, each naming every role and adding up to what it says.
    cores = [line for line in out.splitlines() if "cores busy:" in line]
    assert len(cores) == len(PHASES)
    for line in cores:
        shares = dict(re.findall(r"(service|broker|database|bench|other) ([\d.]+)", line))
        assert set(shares) == {"service", "broker", "database", "bench", "other"}
        total = float(re.search(r"; ([\d.]+) of", line).group(1))  # type: ignore[union-attr]
        assert sum(map(float, shares.values())) == pytest.approx(total, abs=0.03)
    summary = out.split("3. summary")[1].splitlines()
    assert "loaded/raw" in summary[1]
    assert summary[2].split()[:2] == ["1", str(len(os.sched_getaffinity(0)))]
    assert plot.read_bytes().startswith(b"\x89PNG")
