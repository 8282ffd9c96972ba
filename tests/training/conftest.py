"""One tiny training run shared by the training tests (prepare -> fine-tune -> export)."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "training" / "sample_data" / "sample.csv"


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pandas as pd

    from training.finetune.tiny import build_tiny_encoder

    texts = pd.read_csv(SAMPLE, sep="|")["text"]
    return build_tiny_encoder(texts, tmp_path_factory.mktemp("encoder") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path):  # type: ignore[no-untyped-def]
    """The real chain on the sample with a tiny encoder; returns the PipelineResult."""
    import torch

    from training.config import ExportConfig, PrepareConfig
    from training.pipeline import run_all, tiny_finetune_config
    from training.prepare.tables import InputSpec

    torch.set_num_threads(1)  # tiny model; a busy 2-core box makes more threads slower
    work = tmp_path_factory.mktemp("run")
    return run_all(
        [InputSpec(SAMPLE)],
        work,
        work / "bundle",
        prepare_config=PrepareConfig(seed=0),
        finetune_config=tiny_finetune_config(tiny_encoder, 0),
        export_config=ExportConfig(enforce_parity=False, parity_texts=500),
        log=False,
    )
