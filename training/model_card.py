"""The bundle's model card (markdown): use, data, metrics per language, limits."""

from __future__ import annotations

from typing import Any

from schemas.bundle import BundleManifest


def _row(name: str, m: dict[str, Any]) -> str:
    def f(key: str) -> str:
        value = m.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"| {name} | {m['n']} | {f('precision')} | {f('recall')} | {f('f1')} "
        f"| {f('roc_auc')} | {f('pr_auc')} |"
    )


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
        "",
        "## Data",
        f"- rows per split: {data.get('rows', 'n/a')}; labels: {data.get('labels', 'n/a')}",
        f"- languages: {data.get('languages', 'n/a')}",
        f"- inputs: {data.get('inputs', 'n/a')}",
        "- Label-1 texts are LLM-generated (Claude) first-person expressions; label-0 texts are "
        "generated healthy texts and tweets from a sentiment corpus.",
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
