"""The bundle's model card (markdown): use, data, metrics per language, limits."""

from __future__ import annotations

from typing import Any

from schemas.bundle import BundleManifest
from training.evaluate.markdown import markdown_table


def _row(name: str, m: dict[str, Any]) -> str:
    def f(key: str) -> str:
        value = m.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"| {name} | {m['n']} | {f('precision')} | {f('recall')} | {f('f1')} "
        f"| {f('roc_auc')} | {f('pr_auc')} |"
    )


def dev_suite_lines(suite: dict[str, Any]) -> list[str]:
    """The cross-domain table: one row per model, set and language."""
    if not suite:
        return []
    from training.evaluate.suite import INTERVALS_NOTE, table_lines

    return [
        "",
        f"## Cross-domain dev suite (`{suite.get('suite', '?')}`: reported only, never "
        "trained or tuned on)",
        "",
        "Each model at its own threshold (tuned on the validation split). `bundle (truncated)` "
        "is this bundle with chunked scoring off; `tfidf` is the reference: "
        f"{suite.get('reference', 'TF-IDF + logistic regression')}, trained on the same "
        f"training split. {INTERVALS_NOTE}",
        "",
        *table_lines(suite),
    ]


def loso_lines(loso: dict[str, Any]) -> list[str]:
    if not loso:
        return []
    keys = ("source", "n", "label1_rate", "roc_auc", "pr_auc", "recall", "flag_rate")
    lines = [
        "",
        "## Leave one source out",
        "",
        f"Model: {loso.get('model')} (a cheap stand-in for the transformer), trained without "
        "the source, scored on all of its rows; threshold tuned on the other sources' "
        "validation rows. For a one-label source the flag rate is its false-flag rate (all 0) "
        "or its recall (all 1).",
        "",
        *markdown_table(keys, ([r.get(k) for k in keys] for r in loso["rows"])),
    ]
    return lines


def render_model_card(manifest: BundleManifest) -> str:
    test = manifest.metrics.get("test", {})
    per_language = test.get("per_language", {})
    data = manifest.training_data
    parity = manifest.metrics.get("parity", {})
    lines = [
        f"# Model card — depression-indicator screening ({manifest.base_model})",
        "",
        "## Intended use",
        "Screening **support** for trained moderators on multilingual text streams "
        "(en, de, fr, it, pt, es): it flags texts that may show depression indicators so that "
        "a person reviews them. It is **never a diagnosis**, must not decide anything about a "
        "person on its own, and must not be used for profiling, insurance, employment or "
        "law enforcement.",
        "",
        "## Model",
        f"- base encoder: `{manifest.base_model}`; labels {manifest.labels}",
        f"- decision threshold {manifest.threshold:.4f} on P({manifest.labels[1]}), tuned on the "
        f"validation split for precision ≥ {manifest.metrics.get('target_precision', 'n/a')} "
        "with the highest recall",
        f"- max sequence length {manifest.max_sequence_length} tokens; quantization: "
        f"{manifest.quantization or 'none'}",
        f"- input normalisation (applied identically at serving): "
        f"`{manifest.normalization.model_dump()}`",
        f"- long texts: {chunking_summary(manifest)}",
        f"- calibration: {calibration_summary(manifest)}",
        "",
        "## Data",
        f"- rows per split: {data.get('rows', 'n/a')}; labels: {data.get('labels', 'n/a')}",
        f"- languages: {data.get('languages', 'n/a')}",
        f"- inputs: {data.get('inputs', 'n/a')}",
        "- Seed data: label-1 texts are LLM-generated (Claude) first-person expressions; "
        "label-0 texts are generated healthy texts and tweets from a sentiment corpus. With "
        "`--real-train`, human-labelled Reddit posts and Spanish tweets and human-annotated "
        "hard negatives (ordinary sadness, anger, fear) are added; see the inputs above.",
        f"- source audit: {source_audit_summary(data.get('source_audit'))}",
        "",
        "## Metrics (held-out test split, quantized model, at the bundle threshold)",
        "",
        "| slice | rows | precision | recall | F1 | ROC-AUC | PR-AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    if test:
        lines.append(_row("all", test))
    lines += [_row(lang, m) for lang, m in per_language.items()]
    if parity:
        lines += [
            "",
            f"Parity with PyTorch on {parity.get('n')} texts: label agreement "
            f"{parity.get('label_agreement', 0):.4f}, max probability difference "
            f"{parity.get('max_prob_diff', 0):.4f}.",
        ]
    lines += dev_suite_lines(manifest.metrics.get("dev_suite", {}))
    lines += loso_lines(manifest.metrics.get("loso", {}))
    lines += [
        "",
        "## Known limits",
        "- Trained mostly on synthetic text: real posts are messier, use slang, sarcasm, "
        "quotes and mixed languages; expect lower recall and precision on them.",
        "- Tweets in the data are almost all label 0. Mentions, links, hashtags and emoji are "
        "normalised away, but tweet *style* can remain a cue: social-media texts with real "
        "indicators may be under-flagged.",
        "- Generated healthy texts often talk about depression in a recovery frame; texts "
        "*about* depression (news, awareness) may be flagged.",
        "- Metrics on a small or tiny model (tests, demos) mean nothing about real performance.",
        "- Languages other than the six are out of scope.",
    ]
    return "\n".join(lines) + "\n"


def chunking_summary(manifest: BundleManifest) -> str:
    c = manifest.chunking
    if not c.enabled:
        return f"truncated to {manifest.max_sequence_length} tokens"
    pooling = "maximum" if c.pooling == "max" else f"mean of the top {c.top_k}"
    return (
        f"overlapping windows of {manifest.max_sequence_length} tokens (stride {c.stride}, "
        f"at most {c.max_chunks}), window margins pooled by {pooling}"
    )


def calibration_summary(manifest: BundleManifest) -> str:
    c = manifest.calibration
    if c.method == "none":
        return "none (plain softmax)"
    fitted = c.fitted_on
    return (
        f"{c.method} scaling (scale {c.scale:.3f}, bias {c.bias:.3f}) fit on the "
        f"{fitted.get('split', 'validation')} split ({fitted.get('rows', '?')} rows, sources "
        f"{', '.join(fitted.get('sources', []))}); log loss {fitted.get('log_loss_before', 0):.3f}"
        f" -> {fitted.get('log_loss_after', 0):.3f}"
    )


def source_audit_summary(audit: Any) -> str:
    if not isinstance(audit, dict):
        return "n/a"
    guess = audit.get("source_from_text") or {}
    parts = []
    if guess:
        parts.append(
            f"the source is guessed from the text with accuracy {guess.get('accuracy', 0):.2f} "
            f"(majority {guess.get('majority_baseline', 0):.2f})"
        )
    if audit.get("label_from_source_auc") is not None:
        parts.append(
            f"the source alone predicts the label with ROC-AUC {audit['label_from_source_auc']:.2f}"
        )
    return "; ".join(parts) or "n/a"
