"""Typed stage hand-offs: the stage commands build the same bundle as `train all`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from schemas.bundle import read_manifest
from tests.support.cli import train_cli

pytestmark = pytest.mark.training

# 60 steps: long enough for the tiny model to rank better than chance (calibrate refuses less).
COMMON = ["--max-steps", "60", "--eval-steps", "30", "--batch-size", "16", "--lr", "0.005"]
COMMON += ["--max-length", "64", "--seed", "1", "--device", "cpu"]


def _cli(work: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("DEPDETECT_DATA__WORK_DIR", str(work))

    app = train_cli()
    return app


def _run(app: typer.Typer, *args: str) -> None:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output


def test_stage_commands_build_the_bundle_train_all_builds(
    tiny_encoder: Path, sample_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    torch.set_num_threads(1)
    data = ["--input", f"{sample_csv}:1.5", "--no-sentiment"]
    model = ["--base-model", str(tiny_encoder), *COMMON]

    staged = tmp_path / "staged"
    app = _cli(staged, monkeypatch)
    _run(app, "prepare", *data, "--seed", "1", "--no-plots")
    _run(app, "finetune", *model)
    _run(app, "export", "--no-enforce-parity")
    _run(app, "calibrate", "--method", "platt")

    together = tmp_path / "together"
    app = _cli(together, monkeypatch)
    _run(app, "all", *data, *model, "--no-enforce-parity", "--calibrate", "platt")

    a, b = read_manifest(staged / "bundle"), read_manifest(together / "bundle")
    assert a.model_version == b.model_version  # same graph and tokenizer, byte for byte
    assert a.calibration.method == b.calibration.method == "platt"
    assert a.calibration.scale == b.calibration.scale
    assert a.chunking == b.chunking
    assert a.chunking.enabled
    assert a.threshold == b.threshold
    assert a.normalization == b.normalization
    assert a.training_data == b.training_data
    assert a.metrics["test"] == b.metrics["test"]

    # The hand-offs are typed files that name data by file name, rows and hash.
    from training.finetune.result import FinetuneResult
    from training.prepare.manifest import PreparedData

    prepared = PreparedData.load(staged / "data")
    finetuned = FinetuneResult.load(staged / "model")
    assert finetuned.data == prepared.fingerprint()
    assert set(prepared.splits) == {"train", "validation", "test"}
    assert all(len(split.sha256) == 64 for split in prepared.splits.values())
    assert str(tmp_path) not in (staged / "model" / FinetuneResult.FILE).read_text()
    assert str(tmp_path) not in (staged / "data" / PreparedData.FILE).read_text()


def test_export_refuses_data_the_model_was_not_trained_beside(
    tiny_run,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    import shutil

    from schemas.errors import ConfigurationError
    from training.export.run import export_bundle

    data = tmp_path / "data"
    shutil.copytree(tiny_run.prepared.directory, data)
    validation = data / "validation.csv"
    lines = validation.read_text(encoding="utf-8").splitlines(keepends=True)
    validation.write_text("".join(lines[:-5]), encoding="utf-8")
    metadata = json.loads((data / "metadata.json").read_text())
    from training.prepare.manifest import SplitFile

    metadata["splits"]["validation"] = SplitFile.describe(validation, len(lines) - 6).model_dump()
    (data / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ConfigurationError, match="other prepared data"):
        export_bundle(tiny_run.finetuned.model_dir, data, tmp_path / "bundle", log=False)
