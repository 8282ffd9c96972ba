"""benchmarks/bench_bundle.py runs on a bundle and prints every figure it promises
(the figures themselves are measured, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.training

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_bundle.py"


def test_bench_bundle_prints_sweep_and_side_by_side(tiny_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = str(tiny_run.exported.bundle_dir)
    plot = tmp_path / "sweep.png"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            bundle,
            bundle,
            "--texts",
            "24",
            "--repeats",
            "1",
            "--batch-sizes",
            "4,8",
            "--threads",
            "1",
            "--lengths",
            "10,50,200",
            "--sweep-texts",
            "4",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = done.stdout
    lines = out.splitlines()
    # The tiny model has 130 positions, so its "original method" pads to 128.
    assert sum(line.startswith("batch 1, padded to 128") for line in lines) == 2
    assert out.count("length sweep") == 2
    sweep = [line.split() for line in lines if line.strip()[:3] in ("10 ", "50 ", "200")]
    assert [row[0] for row in sweep] == ["10", "50", "200"] * 2
    # 200 tokens are cut to the bundle's 128 (no chunking in the tiny bundle).
    assert [float(row[2]) for row in sweep[:3]] == pytest.approx([10, 50, 128], abs=2)
    assert "side by side: 3 interleaved rounds" in out and "(the original method)" in out
    # Both bundles' best batch in every round, with a ratio to the first's best.
    assert sum("x the original method" in line for line in lines) == 2
    assert plot.read_bytes().startswith(b"\x89PNG")
