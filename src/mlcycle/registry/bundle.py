"""Model bundles: one content-addressed folder with everything a deployed model needs.

Layout: ``model.joblib`` (fitted sklearn pipeline), ``schema.json`` (the data
contract), ``meta.json`` (:class:`~mlcycle.artifacts.BundleMeta`),
``profile.json`` (reference profile), ``reference.parquet`` (a sample of
training rows for drift tests), ``evaluation.json`` (metrics with intervals,
slices), ``blessing.json`` (every gate check with its figures),
``report.html`` / ``report.json`` (the evaluation report), ``lineage.json``
(dataset version, raw partitions / watermark, spec hash, git sha, run id) and a
generated ``MODEL_CARD.md``.

A bundle is built in two steps: :func:`write_package` writes what the serving
code loads (the gate's infra check runs on exactly these files), then
:func:`finish_bundle` adds the evidence.

Example:
    >>> write_package(folder, model_file=m, schema=s, meta=meta, profile=p, reference=df)
    >>> finish_bundle(folder, evaluation=ev, blessing=b, problem=spec.problem, lineage={...})
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.artifacts import Blessing, BundleMeta, Evaluation, Profile
from mlcycle.schema import Schema
from mlcycle.spec import LOWER_IS_BETTER, Problem

REFERENCE_ROWS = 50_000
PACKAGE_FILES = ("model.joblib", "schema.json", "meta.json", "profile.json", "reference.parquet")


def write_package(
    folder: Path,
    *,
    model_file: Path,
    schema: Schema,
    meta: BundleMeta,
    profile: Profile,
    reference: pd.DataFrame,
    seed: int = 0,
) -> None:
    """The files serving and monitoring load: model, contract, meta, reference profile/sample."""
    shutil.copyfile(model_file, folder / "model.joblib")
    (folder / "schema.json").write_text(schema.model_dump_json(indent=1), encoding="utf-8")
    (folder / "meta.json").write_text(meta.model_dump_json(indent=1), encoding="utf-8")
    (folder / "profile.json").write_text(profile.model_dump_json(), encoding="utf-8")
    if len(reference) > REFERENCE_ROWS:
        reference = reference.sample(REFERENCE_ROWS, random_state=seed).sort_index()
    reference.reset_index(drop=True).to_parquet(folder / "reference.parquet", index=False)


def copy_package(package: Path, folder: Path) -> None:
    """Copy every file of a package unchanged (the infra check vouched for these bytes).

    Besides :data:`PACKAGE_FILES` a package may hold what other stages add for
    serving or monitoring (an ``onnx/`` export, ``outliers.joblib``).
    """
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(package)
        if path.is_dir() or relative.as_posix() == "record.json":
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def finish_bundle(
    folder: Path,
    *,
    evaluation: Evaluation,
    blessing: Blessing,
    problem: Problem,
    lineage: dict[str, Any] | None = None,
    report_dir: Path | None = None,
) -> None:
    """Add the evidence to a folder holding a package: evaluation, blessing, report, card."""
    meta = read_meta(folder)
    (folder / "evaluation.json").write_text(evaluation.model_dump_json(indent=1), encoding="utf-8")
    (folder / "blessing.json").write_text(blessing.model_dump_json(indent=1), encoding="utf-8")
    if lineage is not None:
        (folder / "lineage.json").write_text(
            json.dumps(lineage, indent=1, sort_keys=True, default=str), encoding="utf-8"
        )
    if report_dir is not None:
        for name in ("report.html", "report.json"):
            if (report_dir / name).is_file():
                shutil.copyfile(report_dir / name, folder / name)
    (folder / "MODEL_CARD.md").write_text(
        model_card(meta, evaluation, blessing, problem, lineage), encoding="utf-8"
    )


def write_bundle(
    folder: Path,
    *,
    model_file: Path,
    schema: Schema,
    meta: BundleMeta,
    profile: Profile,
    reference: pd.DataFrame,
    evaluation: Evaluation,
    blessing: Blessing,
    problem: Problem,
    seed: int = 0,
    lineage: dict[str, Any] | None = None,
) -> None:
    """Fill ``folder`` (a staging folder) with a complete bundle in one call."""
    write_package(
        folder,
        model_file=model_file,
        schema=schema,
        meta=meta,
        profile=profile,
        reference=reference,
        seed=seed,
    )
    finish_bundle(
        folder, evaluation=evaluation, blessing=blessing, problem=problem, lineage=lineage
    )


def read_meta(folder: Path) -> BundleMeta:
    return BundleMeta.model_validate_json((folder / "meta.json").read_text(encoding="utf-8"))


def read_schema(folder: Path) -> Schema:
    return Schema.model_validate_json((folder / "schema.json").read_text(encoding="utf-8"))


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def model_card(
    meta: BundleMeta,
    evaluation: Evaluation,
    blessing: Blessing,
    problem: Problem,
    lineage: dict[str, Any] | None = None,
) -> str:
    """A generated model card: intended use, training data, metrics, slices, limitations."""
    lineage = lineage or {}
    lines = [
        f"# Model card: {meta.name}",
        "",
        "## Intended use",
        f"Predicts `{problem.target}` ({problem.task}"
        + (
            f", positive label `{problem.positive_label}`"
            if problem.positive_label is not None
            else ""
        )
        + f") from {len(meta.features)} features: {', '.join(meta.features)}.",
        f"Judged by `{evaluation.primary_metric}`; single-row latency budget "
        f"{problem.latency_budget_ms} ms.",
        "",
        "## Training data",
        f"Dataset version `{meta.dataset_id[:12]}`; spec hash `{meta.spec_hash[:12]}`; "
        f"git `{meta.git_sha or 'n/a'}`; built {meta.created_at} "
        f"with mlcycle {meta.mlcycle_version}.",
    ]
    if lineage.get("partitions"):
        lines.append(f"Raw partitions: {len(lineage['partitions'])}.")
    if lineage.get("watermark"):
        lines.append(f"Watermark: {lineage['watermark']}.")
    if lineage.get("run_id"):
        lines.append(f"Pipeline run `{lineage['run_id']}`.")
    level = f"{evaluation.confidence:.0%}"
    lines += [
        "",
        f"## Holdout metrics ({evaluation.rows} rows, {level} bootstrap intervals, "
        f"{evaluation.n_boot} resamples)",
        "| metric | model | interval | baseline |",
        "|---|---|---|---|",
    ]
    base = evaluation.metrics.get("baseline", {})
    intervals = evaluation.intervals.get("candidate", {})
    for name, value in evaluation.metrics["candidate"].items():
        ci = intervals.get(name)
        shown = "" if ci is None else f"{ci[0]:.4f} … {ci[1]:.4f}"
        lines.append(f"| {name} | {value:.4f} | {shown} | {_fmt(base.get(name))} |")
    if evaluation.benefit is not None:
        b = evaluation.benefit
        lines += [
            "",
            f"Benefit per row at threshold {b.threshold:.3f} (chosen on validation): "
            + ", ".join(f"{role} {v:.3f}" for role, v in b.per_row.items())
            + (f" (CI {b.interval[0]:.3f} … {b.interval[1]:.3f})" if b.interval else ""),
        ]
    metric = evaluation.primary_metric
    if evaluation.slices:
        lines += ["", f"## Slices ({metric})", "| slice | rows | model | baseline | judged |"]
        lines.append("|---|---|---|---|---|")
        for s in evaluation.slices:
            lines.append(
                f"| {s.column}={s.value} | {s.rows} | "
                f"{_fmt(s.metrics.get('candidate', {}).get(metric))} | "
                f"{_fmt(s.metrics.get('baseline', {}).get(metric))} | "
                f"{'yes' if s.judged else 'no'} |"
            )
    lines += ["", "## Gate", f"Blessed: **{blessing.blessed}**", ""]
    lines += [f"- {'✔' if c.passed else '✘'} {c.name}: {c.detail}" for c in blessing.checks]
    lines += [
        "",
        "## Known limitations",
        "- Judged on a single holdout from the training period; monitor drift after deployment.",
        "- Inputs outside the training ranges or with unseen categories are "
        + ("rejected." if meta.unseen_category == "reject" else "scored as 'unknown'."),
    ]
    weak = _weak_slices(evaluation)
    if weak:
        lines.append(f"- Weakest judged slices by {metric}: {weak}.")
    small = [s for s in evaluation.slices if not s.judged]
    if small:
        lines.append(
            f"- {len(small)} slice(s) were too small to judge; their figures are indicative only."
        )
    lines.append("")
    return "\n".join(lines)


def _weak_slices(evaluation: Evaluation) -> str:
    metric = evaluation.primary_metric
    judged = [
        (s, s.metrics.get("candidate", {}).get(metric))
        for s in evaluation.slices
        if s.judged and s.metrics.get("candidate", {}).get(metric) is not None
    ]
    if not judged:
        return ""
    reverse = metric in LOWER_IS_BETTER
    ranked = sorted(judged, key=lambda item: item[1] or 0.0, reverse=reverse)[:3]
    return ", ".join(f"{s.column}={s.value} ({v:.4f})" for s, v in ranked)
