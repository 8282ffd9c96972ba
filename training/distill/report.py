"""Teacher and distilled student side by side: quality on the test split and on every
dev set, how closely the student follows the teacher on validation texts, throughput in
the same run, and whether the student meets issue 13's bars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.inference.runner import ModelRunner
from training.evaluate.recipes import interleaved_rates, throughput
from training.evaluate.suite import format_table, rows_for, suite_tables
from training.evaluate.uncertainty import auc_difference_interval
from training.prepare.run import read_split

#: ROC-AUC the student may lose: in distribution (test split), and on each other set.
MAX_AUC_DROP_IN = 0.01
MAX_AUC_DROP_CROSS = 0.02
MIN_SPEEDUP = 1.8
TEST_SET = "test (in-distribution)"


def teacher_vs_student(
    teacher: Path,
    student: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    suite: Path | None = None,
    bench_texts: int = 300,
    batch_sizes: tuple[int, ...] = (8, 16, 32, 64),
    threads: int = 2,
    rounds: int = 3,
) -> dict[str, Any]:
    """Writes ``distilled.txt`` and ``distilled.json`` into ``out_dir``; returns the dict."""
    runners = {
        "teacher": ModelRunner.from_bundle(teacher, intra_op_threads=threads),
        "student": ModelRunner.from_bundle(student, intra_op_threads=threads),
    }
    tables = {TEST_SET: read_split(data_dir, "test")}
    if suite is not None:
        tables.update(suite_tables(suite))
    result: dict[str, Any] = {"models": {}}
    scores: dict[str, dict[str, np.ndarray]] = {}
    for name, runner in runners.items():
        rows = []
        for set_name, table in tables.items():
            scores.setdefault(set_name, {})[name] = runner.predict_proba(
                table["text"].astype(str).tolist()
            )
            rows += rows_for(set_name, table, scores[set_name][name], runner.threshold)
        result["models"][name] = {"threshold": runner.threshold, "rows": rows}
    bench = tables[TEST_SET]["text"].astype(str).tolist()[:bench_texts]
    best = {name: throughput(r, bench, batch_sizes, 2)[0] for name, r in runners.items()}
    teacher_rates, student_rates = interleaved_rates(
        [(runners[name], best[name]) for name in ("teacher", "student")], bench, rounds, 2
    )
    teacher_rate, student_rate = np.median(teacher_rates), np.median(student_rates)
    result["speed"] = {
        "teacher_texts_per_s": float(teacher_rate),
        "student_texts_per_s": float(student_rate),
        "speedup": float(student_rate / teacher_rate),
        "texts": len(bench),
        "rounds": rounds,
    }
    result["fidelity"] = fidelity(
        runners["teacher"], runners["student"], read_split(data_dir, "validation")
    )
    result["auc_drop"] = auc_drops(result)
    for set_name, drop in result["auc_drop"].items():
        drop["ci"] = auc_difference_interval(
            tables[set_name]["label"].to_numpy(dtype=int),
            scores[set_name]["teacher"],
            scores[set_name]["student"],
        )
    result["meets_goal"] = result["speed"]["speedup"] >= MIN_SPEEDUP and all(
        d["within"] for d in result["auc_drop"].values()
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "distilled.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / "distilled.txt").write_text(format_distilled(result) + "\n")
    return result


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho (ties share their mean rank); None under two texts or a constant."""
    if len(a) < 2:
        return None
    rho = pd.Series(a).rank().corr(pd.Series(b).rank())
    return None if pd.isna(rho) else float(rho)


def fidelity(teacher: ModelRunner, student: ModelRunner, table: pd.DataFrame) -> dict[str, Any]:
    """How closely the student ranks the texts of ``table`` (the validation split) as the
    teacher does: Spearman's rho of their scores over all texts, per language, and over
    the texts longer than one window. Ranking is what ROC-AUC measures, so this says
    which way of distilling keeps the teacher's behaviour without looking at the dev
    suite (choosing by a dev set would tune on it)."""
    texts = table["text"].astype(str).tolist()
    taught = teacher.score(texts)
    ours = np.array([s.score for s in student.score(texts)])
    theirs = np.array([s.score for s in taught])
    groups: dict[str, np.ndarray] = {"all": np.ones(len(texts), dtype=bool)}
    if "language" in table:
        languages = table["language"].astype(str).to_numpy()
        groups |= {lang: languages == lang for lang in sorted(set(languages))}
    groups[f"over {teacher.max_length} tokens"] = np.array(
        [s.tokens > teacher.max_length for s in taught]
    )
    return {
        name: {"n": int(mask.sum()), "rho": rank_correlation(ours[mask], theirs[mask])}
        for name, mask in groups.items()
    }


def auc_drops(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Teacher minus student ROC-AUC per set (all languages), and whether it is allowed."""

    def by_set(model: str) -> dict[str, float | None]:
        rows = result["models"][model]["rows"]
        return {r["set"]: r["roc_auc"] for r in rows if r["language"] == "all"}

    teacher, student = by_set("teacher"), by_set("student")
    drops = {}
    for name, auc in teacher.items():
        if auc is None or student.get(name) is None:
            continue  # one-label set: no ROC-AUC
        drop = auc - float(student[name])  # type: ignore[arg-type]
        allowed = MAX_AUC_DROP_IN if name == TEST_SET else MAX_AUC_DROP_CROSS
        drops[name] = {"drop": drop, "allowed": allowed, "within": drop <= allowed}
    return drops


def format_distilled(result: dict[str, Any]) -> str:
    speed = result["speed"]
    lines = [
        "Teacher vs distilled student (each at its own bundle threshold)",
        "",
        format_table(result),
        "",
        f"throughput on {speed['texts']} test texts (best batch, length-sorted, tokenisation "
        f"included; median of {speed.get('rounds', 1)} interleaved rounds): teacher "
        f"{speed['teacher_texts_per_s']:.1f} texts/s, student "
        f"{speed['student_texts_per_s']:.1f} texts/s, {speed['speedup']:.2f}x "
        f"(goal >= {MIN_SPEEDUP}x)",
        "",
        "how closely the student ranks validation texts as the teacher does (Spearman's "
        "rho of the scores; the criterion for choosing how to distill, not the dev sets):",
        "  "
        + ", ".join(
            f"{name} {'-' if f['rho'] is None else format(f['rho'], '.4f')} (n={f['n']})"
            for name, f in result.get("fidelity", {}).items()
        ),
        "",
        "ROC-AUC drop teacher - student per set:",
    ]
    for name, d in result["auc_drop"].items():
        ci = d.get("ci")
        interval = f", 95 % interval {ci[0]:+.4f} to {ci[1]:+.4f}" if ci else ""
        lines.append(
            f"  {name}: {d['drop']:+.4f} (allowed {d['allowed']}{interval}) "
            f"{'ok' if d['within'] else 'TOO LARGE'}"
        )
    lines.append("  (interval: paired stratified bootstrap over the set's texts)")
    lines.append(f"\nmeets every bar: {'yes' if result['meets_goal'] else 'no'}")
    return "\n".join(lines)
