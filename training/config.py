"""Every knob of the training chain, validated once where it is built.

``FinetuneConfig`` holds the hyperparameters; ``PrepareConfig`` and ``ExportConfig``
hold the data and export options. Each raises ``ConfigurationError`` on a value that
cannot work, so a bad flag fails before minutes of work rather than after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from schemas.bundle import ChunkingSettings
from schemas.errors import ConfigurationError
from schemas.text import NormalizationSettings

DEFAULT_BASE_MODEL = "FacebookAI/xlm-roberta-base"
BEST_METRICS = ("f1", "precision", "recall", "accuracy", "roc_auc", "pr_auc", "loss")
#: Word-count buckets of the original project's generation plan (inclusive bounds).
#: ONNX node names (torch exporter, BERT/RoBERTa) of the FFN output and input projections.
FFN_OUTPUT_MATMUL = r"/layer\.\d+/output/dense/MatMul$"
FFN_INPUT_MATMUL = r"/layer\.\d+/intermediate/dense/MatMul$"
LENGTH_BUCKETS: tuple[tuple[int, int], ...] = ((3, 8), (9, 15), (16, 35), (36, 60), (61, 90))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


@dataclass(frozen=True)
class PrepareConfig:
    min_words: int = 3
    max_words: int = 90
    #: Jaccard similarity (word 3-shingles + char 5-grams) at or above which a text is a
    #: near-duplicate and dropped.
    near_duplicate_threshold: float = 0.8
    #: Lower similarity at which texts still share a split group (kept on one side).
    group_threshold: float = 0.5
    #: Per language, keep at most this many label-0 rows per label-1 row (None: no cap).
    max_negative_ratio: float | None = 2.0
    split_ratios: tuple[float, float, float] = (0.7, 0.2, 0.1)
    #: Keep at most this many rows of any one source (sampled per label, seeded), so the
    #: huge healthy corpora do not swamp the rest (None: keep all).
    max_rows_per_source: int | None = None
    #: Row weights are multiplied by (median source size / source size) ** this, so that
    #: no source decides by its size alone: 0 leaves weights as given, 1 gives every
    #: source the same total weight.
    source_balance: float = 0.0
    seed: int = 42
    normalization: NormalizationSettings = field(default_factory=NormalizationSettings)
    plots: bool = True

    def __post_init__(self) -> None:
        _require(1 <= self.min_words <= self.max_words, "need 1 <= min_words <= max_words")
        _require(
            0.0 < self.group_threshold <= self.near_duplicate_threshold <= 1.0,
            "need 0 < group_threshold <= near_duplicate_threshold <= 1",
        )
        _require(
            self.max_rows_per_source is None or self.max_rows_per_source >= 1,
            "max_rows_per_source must be >= 1 or None",
        )
        _require(0.0 <= self.source_balance <= 1.0, "source_balance must be in [0, 1]")
        _require(
            self.max_negative_ratio is None or self.max_negative_ratio > 0,
            "max_negative_ratio must be positive or None",
        )
        _require(
            len(self.split_ratios) == 3
            and all(r > 0 for r in self.split_ratios)
            and abs(sum(self.split_ratios) - 1.0) < 1e-6,
            f"split_ratios must be three positive numbers summing to 1, got {self.split_ratios}",
        )


@dataclass(frozen=True)
class FinetuneConfig:
    """Defaults follow the original project (lr 2e-5, 10 epochs, batch 64, patience 5)."""

    base_model: str = DEFAULT_BASE_MODEL
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    epochs: float = 10.0
    batch_size: int = 64
    eval_batch_size: int = 128
    #: Longest input in tokens; texts are 3-90 words, ~1.3 tokens per word.
    max_length: int = 256
    early_stopping_patience: int = 5
    early_stopping_threshold: float = 0.001
    #: Picks the checkpoint (and stops early): threshold-free, as the shipped threshold is
    #: tuned later, in export.
    best_metric: str = "roc_auc"
    #: The tuned decision threshold is the one with the highest recall at this precision.
    target_precision: float = 0.95
    class_weights: bool = True
    group_by_length: bool = True
    #: Freezing the (250k x hidden) word embeddings halves a CPU step for e5/XLM-R.
    freeze_word_embeddings: bool = False
    #: Stop after this many optimiser steps (None: run the epochs). For smoke runs.
    max_steps: int | None = None
    #: Evaluate every N steps (None: once per epoch).
    eval_steps: int | None = None
    max_grad_norm: float = 1.0
    #: The classifier head (and pooler) learns this many times faster than the encoder. A
    #: freshly initialised head on a pretrained encoder can sit at chance loss for
    #: hundreds of steps at encoder learning rates: on the real-data mix, 400 CPU steps
    #: left the loss at 0.69 with 1x and took it to 0.30 with 20x.
    head_lr_multiplier: float = 1.0
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        _require(bool(self.base_model), "base_model is empty")
        _require(0 < self.learning_rate < 1, "learning_rate must be in (0, 1)")
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        _require(0 <= self.weight_decay < 1, "weight_decay must be in [0, 1)")
        _require(self.epochs > 0, "epochs must be positive")
        _require(self.head_lr_multiplier > 0, "head_lr_multiplier must be positive")
        _require(self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be >= 1")
        _require(8 <= self.max_length <= 512, "max_length must be in [8, 512]")
        _require(self.early_stopping_patience >= 1, "early_stopping_patience must be >= 1")
        _require(self.early_stopping_threshold >= 0, "early_stopping_threshold must be >= 0")
        _require(self.best_metric in BEST_METRICS, f"best_metric must be one of {BEST_METRICS}")
        _require(0 < self.target_precision <= 1, "target_precision must be in (0, 1]")
        _require(self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1")
        _require(self.eval_steps is None or self.eval_steps >= 1, "eval_steps must be >= 1")
        _require(self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda")


@dataclass(frozen=True)
class QuantRecipe:
    """One way to turn the fp32 graph into the shipped int8 graph (see
    ``training/export/quantize.py`` for what each step does)."""

    description: str
    #: ORT's transformer fusions (Attention, Gelu; SkipLayerNorm undone) before quantizing.
    fuse: bool = True
    #: Per-channel int8 weights (one scale per output column) instead of one per tensor.
    per_channel: bool = True
    #: Word embeddings as int8 with one scale per row (near lossless, 4x smaller); else fp32.
    int8_embedding_rows: bool = True
    #: MatMuls (regular expressions searched in ONNX node names) given 8-bit block-wise
    #: weights and fp32 activations instead of dynamic int8.
    weight_only_nodes: tuple[str, ...] = ()
    #: Only the lowest share of the encoder layers get ``weight_only_nodes`` (1.0: all);
    #: the nodes of the layers above go dynamic int8 like the rest.
    weight_only_lower_share: float = 1.0
    #: Nodes (regular expressions on node names) left entirely fp32.
    exclude_nodes: tuple[str, ...] = ()
    #: MatMuls whose input channels are smoothed before quantizing (SmoothQuant): the
    #: activation is divided per channel by s = amax(x)^a / amax(w)^(1-a), measured on
    #: calibration texts, and the weight rows multiplied by s; outlier channels then no
    #: longer set the per-tensor activation scale.
    smooth_nodes: tuple[str, ...] = ()
    smooth_alpha: float = 0.5
    #: Per FFN, the intermediate channels with the widest range on calibration texts that
    #: stay fp32 in a small side chain, so that the rest's dynamic int8 scale is not set
    #: by them (0: none).
    outlier_channels: int = 0
    #: ORT's fused erf GELUs as the tanh approximation (``FastGelu``): a faster kernel,
    #: BERT's own approximation (``training/export/gelu.py``). Needs ``fuse``.
    tanh_gelu: bool = False
    #: Each int8 activation's scale fixed from calibration texts instead of measured per
    #: batch (``training/export/static_activations.py``): one pass over it less.
    static_activations: bool = False

    def __post_init__(self) -> None:
        _require(0 < self.weight_only_lower_share <= 1, "weight_only_lower_share in (0, 1]")
        _require(self.outlier_channels >= 0, "outlier_channels must be >= 0")
        _require(self.fuse or not self.tanh_gelu, "tanh_gelu needs fuse (ORT's fused GELUs)")


#: The recipes `train export --recipe` and the recipe comparison know, by name.
RECIPES: dict[str, QuantRecipe] = {
    # Measured on run E (README, Speed): one layer's FFN output at a time kept 8-bit
    # weight-only, the lower six layers each won back 0.15-0.35 points of agreement and
    # the upper six none; the lower half together agree more than all twelve do.
    "rows-ffn8-lower": QuantRecipe(
        "fused; int8 per-row embeddings; FFN output projections of the lower half of the "
        "layers 8-bit weight-only (fp32 activations); other MatMuls and Attention dynamic "
        "int8 per-channel",
        weight_only_nodes=(FFN_OUTPUT_MATMUL,),
        weight_only_lower_share=0.5,
    ),
    "rows-ffn8": QuantRecipe(
        "fused; int8 per-row embeddings; FFN output projections 8-bit weight-only "
        "(fp32 activations); other MatMuls and Attention dynamic int8 per-channel",
        weight_only_nodes=(FFN_OUTPUT_MATMUL,),
    ),
    "fused-per-channel": QuantRecipe(
        "fused; int8 per-row embeddings; every MatMul and Attention dynamic int8 per-channel"
    ),
    # Measured on run E (README, Speed): 2, 4, 8 and 16 channels agree on 99.66, 99.70,
    # 99.62 and 99.62 % at 2.03, 2.02, 1.98 and 1.99x fp32 (one or two texts apart);
    # every MatMul int8 without the side chain, 99.17 % at 2.08x.
    "fused-outliers-fp32": QuantRecipe(
        "fused; int8 per-row embeddings; each FFN's 4 widest intermediate channels (on "
        "calibration texts) fp32 in a side chain; every other MatMul and Attention dynamic "
        "int8 per-channel",
        outlier_channels=4,
    ),
    "fused-outliers-tanh": QuantRecipe(
        "fused-outliers-fp32 with the FFN GELUs as the tanh approximation (FastGelu, "
        "a faster kernel than ORT's erf GELU)",
        outlier_channels=4,
        tanh_gelu=True,
    ),
    "fused-outliers-tanh-static": QuantRecipe(
        "fused-outliers-tanh with each int8 activation's scale fixed from calibration texts "
        "(static) instead of measured per batch",
        outlier_channels=4,
        tanh_gelu=True,
        static_activations=True,
    ),
    "fused-per-tensor": QuantRecipe(
        "fused; int8 per-row embeddings; every MatMul and Attention dynamic int8 per-tensor",
        per_channel=False,
    ),
    "fused-ffn-out-fp32": QuantRecipe(
        "fused; int8 per-row embeddings; FFN output projections fp32; the rest dynamic int8 "
        "per-channel",
        exclude_nodes=(FFN_OUTPUT_MATMUL,),
    ),
    "fused-ffn-in-fp32": QuantRecipe(
        "fused; int8 per-row embeddings; FFN input projections fp32; the rest dynamic int8 "
        "per-channel",
        exclude_nodes=(FFN_INPUT_MATMUL,),
    ),
    "fused-smooth-ffn-out": QuantRecipe(
        "fused; int8 per-row embeddings; FFN output projections smoothed (SmoothQuant, "
        "alpha 0.5, calibrated on training texts); every MatMul and Attention dynamic int8 "
        "per-channel",
        smooth_nodes=(FFN_OUTPUT_MATMUL,),
    ),
    "fused-smooth-all": QuantRecipe(
        "fused; int8 per-row embeddings; every weight MatMul smoothed (SmoothQuant, alpha "
        "0.5); every MatMul and Attention dynamic int8 per-channel",
        smooth_nodes=(FFN_OUTPUT_MATMUL, FFN_INPUT_MATMUL, r"/attention/output/dense/MatMul$"),
    ),
    "dynamic": QuantRecipe(
        "unfused graph; fp32 embeddings; every weight MatMul dynamic int8 per-tensor "
        "(onnxruntime quantize_dynamic as documented)",
        fuse=False,
        per_channel=False,
        int8_embedding_rows=False,
    ),
    "dynamic-per-channel": QuantRecipe(
        "unfused graph; fp32 embeddings; every weight MatMul dynamic int8 per-channel",
        fuse=False,
        int8_embedding_rows=False,
    ),
}
DEFAULT_RECIPE = "fused-outliers-tanh"


@dataclass(frozen=True)
class QuantAwareConfig:
    """Quantization-aware tuning before export (``training/export/quant_aware.py``): the
    fine-tuned weights are nudged so that the int8 graph's logits match the fine-tuned
    model's. Off when ``steps`` is 0."""

    steps: int = 0
    batch_size: int = 16
    learning_rate: float = 1e-5
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        _require(self.steps >= 0, "quant-aware steps must be >= 0")
        _require(self.batch_size >= 1, "quant-aware batch_size must be >= 1")
        _require(0 < self.learning_rate < 1, "quant-aware learning_rate must be in (0, 1)")
        _require(self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda")


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 17
    #: A name in ``RECIPES``; the fields below adjust it.
    recipe: str = DEFAULT_RECIPE
    #: Overrides the recipe's per-channel choice (None: the recipe's).
    per_channel: bool | None = None
    #: Nodes (regular expressions on node names) left fp32 on top of the recipe's.
    exclude_nodes: tuple[str, ...] = ()
    #: Parity: texts scored by both PyTorch and the quantized graph (fewer if unavailable).
    parity_texts: int = 500
    min_label_agreement: float = 0.995
    #: Refuse to write a bundle whose parity is below the bar (off for smoke runs).
    enforce_parity: bool = True
    #: Quantization-aware tuning of the weights before they are quantized (off: 0 steps).
    quant_aware: QuantAwareConfig = field(default_factory=QuantAwareConfig)

    def __post_init__(self) -> None:
        _require(11 <= self.opset <= 21, "opset must be in [11, 21]")
        _require(
            self.recipe in RECIPES, f"unknown recipe {self.recipe!r}; known: {sorted(RECIPES)}"
        )
        _require(self.parity_texts >= 1, "parity_texts must be >= 1")
        _require(0 < self.min_label_agreement <= 1, "min_label_agreement must be in (0, 1]")
        for pattern in (*self.quantization.weight_only_nodes, *self.quantization.exclude_nodes):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigurationError(f"bad node pattern {pattern!r}: {exc}") from exc

    @property
    def quantization(self) -> QuantRecipe:
        """The named recipe with this config's overrides applied."""
        base = RECIPES[self.recipe]
        return replace(
            base,
            per_channel=base.per_channel if self.per_channel is None else self.per_channel,
            exclude_nodes=(*base.exclude_nodes, *self.exclude_nodes),
        )


@dataclass(frozen=True)
class DistillConfig:
    """A smaller student distilled from a fine-tuned teacher (``train distill``)."""

    #: Encoder layers the student keeps, copied from the teacher.
    layers: int = 6
    #: ``spread``: evenly spaced, the last layer included (12 -> 6: 2, 4, ..., 12);
    #: ``first``: the bottom ``layers`` layers.
    layer_choice: Literal["spread", "first"] = "spread"
    #: Softmax temperature of the soft-label (KL) loss. With ``soft_weight`` 1, chosen on
    #: how closely the student ranks validation texts as the teacher does (README,
    #: Speed): T = 4 and 8 alike, both closer than T = 2 with 30 % cross-entropy.
    temperature: float = 4.0
    #: Weight of the soft-label loss; the rest goes to cross-entropy on labelled rows.
    soft_weight: float = 1.0
    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    #: Longest input in tokens (None: the teacher's).
    max_length: int | None = None
    #: At most this many unlabelled texts, sampled (None: all).
    max_unlabelled: int | None = 20_000
    #: How the shipped bundle cuts long texts into windows; when enabled, every window
    #: after a text's first joins the training rows with the teacher's soft label only, so
    #: that the student learns to score mid-text windows as served (None: first windows).
    windows: ChunkingSettings | None = None
    #: Freezing the word embeddings (the student shares the teacher's) halves a CPU step.
    freeze_word_embeddings: bool = True
    #: Weight of a layer-to-layer term: each student layer's hidden states are drawn
    #: toward those of the teacher layer it was copied from (1 - cosine over real tokens,
    #: as DistilBERT). 0: soft labels only; the teacher then runs once, before training,
    #: instead of at every step.
    hidden_weight: float = 0.0
    #: Stop after this many optimiser steps (None: run the epochs). For smoke runs.
    max_steps: int | None = None
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        _require(self.layers >= 1, "layers must be >= 1")
        _require(self.layer_choice in ("spread", "first"), "layer_choice: spread or first")
        _require(self.temperature > 0, "temperature must be positive")
        _require(0 <= self.soft_weight <= 1, "soft_weight must be in [0, 1]")
        _require(self.hidden_weight >= 0, "hidden_weight must be >= 0")
        _require(self.epochs > 0, "epochs must be positive")
        _require(self.batch_size >= 1, "batch_size must be >= 1")
        _require(0 < self.learning_rate < 1, "learning_rate must be in (0, 1)")
        _require(0 <= self.warmup_ratio < 1, "warmup_ratio must be in [0, 1)")
        _require(self.max_length is None or 8 <= self.max_length <= 512, "max_length in [8, 512]")
        _require(
            self.max_unlabelled is None or self.max_unlabelled >= 0, "max_unlabelled must be >= 0"
        )
        _require(self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1")
        _require(self.device in ("auto", "cpu", "cuda"), "device must be auto, cpu or cuda")


CalibrationMethod = Literal["none", "temperature", "platt"]


@dataclass(frozen=True)
class CalibrateConfig:
    """``train calibrate`` (and ``train all --calibrate``): how the shipped bundle scores
    long texts, how its margins are scaled, and the precision its threshold aims at."""

    method: CalibrationMethod = "temperature"
    chunking: ChunkingSettings = field(default_factory=lambda: ChunkingSettings(enabled=True))
    #: None: the bundle's own target precision (the one fine-tuning was given).
    target_precision: float | None = None

    def __post_init__(self) -> None:
        methods = get_args(CalibrationMethod)
        _require(self.method in methods, f"the calibration method must be one of {list(methods)}")
        _require(
            self.target_precision is None or 0 < self.target_precision <= 1,
            "target_precision must be in (0, 1]",
        )
