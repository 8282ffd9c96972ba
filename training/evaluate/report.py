"""The cross-domain report: dev suite (bundle, bundle truncated, TF-IDF) and LOSO.

Writes ``suite.json``/``suite.md``, ``loso.json``/``loso.md`` and the ROC/PR plots to
``out_dir``, stores both tables in the bundle's manifest (``metrics.dev_suite`` and
``metrics.loso``; the model version does not change) and re-renders its model card.
The dev suite is only scored here, never trained or tuned on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from schemas.bundle import MODEL_CARD, read_manifest, write_manifest
from training.evaluate.loso import format_loso, leave_one_source_out
from training.evaluate.reference import NAME as REFERENCE_NAME
from training.evaluate.suite import evaluate_suite, format_table, suite_scorers
from training.model_card import render_model_card
from training.prepare.run import read_split


def write_report(
    bundle: Path,
    data_dir: Path,
    suite_dir: Path,
    out_dir: Path,
    *,
    loso: bool = True,
    threads: int = 2,
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    scorers = suite_scorers(
        bundle, reference_data=data_dir, compare_truncation=True, threads=threads
    )
    suite = evaluate_suite(scorers, suite_dir, plots=out_dir / "plots")
    suite["reference"] = REFERENCE_NAME
    (out_dir / "suite.json").write_text(json.dumps(suite, indent=2) + "\n")
    (out_dir / "suite.md").write_text(format_table(suite) + "\n")
    report: dict[str, Any] = {"dev_suite": suite}
    manifest = read_manifest(bundle)
    if loso:
        train, validation = read_split(data_dir, "train"), read_split(data_dir, "validation")
        everything = pd.concat([train, validation, read_split(data_dir, "test")])
        rows = leave_one_source_out(
            train,
            validation,
            everything,
            target_precision=float(manifest.metrics.get("target_precision", 0.95)),
            normalization=manifest.normalization,
        )
        report["loso"] = {"model": REFERENCE_NAME, "rows": rows}
        (out_dir / "loso.json").write_text(json.dumps(report["loso"], indent=2) + "\n")
        (out_dir / "loso.md").write_text(format_loso(rows) + "\n")
    slim_suite = {k: v for k, v in suite.items() if k != "plots"}
    slim_suite["suite"] = suite_dir.name
    # The prepare stage's source audit, so the card can say how much the source gives away.
    metadata = data_dir / "metadata.json"
    audit = json.loads(metadata.read_text()).get("source_audit") if metadata.is_file() else None
    training_data = {**manifest.training_data, **({"source_audit": audit} if audit else {})}
    updated = manifest.model_copy(
        update={
            "training_data": training_data,
            "metrics": {
                **manifest.metrics,
                "dev_suite": slim_suite,
                **({"loso": report["loso"]} if "loso" in report else {}),
            },
        }
    )
    stored = write_manifest(bundle, updated)
    (bundle / MODEL_CARD).write_text(render_model_card(stored), encoding="utf-8")
    return report
