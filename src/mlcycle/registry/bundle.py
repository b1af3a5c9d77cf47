"""What the registry writes into a model bundle: its meta record, its lineage, its card.

The bundle's layout (file names, writers, readers, verification) belongs to
:class:`mlcycle.bundle.Bundle`; this module only computes the registry's parts
of the content: :func:`bundle_meta` (``meta.json``), :func:`lineage_record`
(``lineage.json``) and :func:`model_card` (``MODEL_CARD.md``).

Example:
    >>> meta = bundle_meta(name="flights", problem=spec.problem, record=trained,
    ...                    evaluation=evaluation, dataset_id=d, model_id=m,
    ...                    spec_hash=h, git_sha=None, created_at=t, unseen_category="reject")
    >>> bundle.write_serving(model_file=path, schema=s, meta=meta, profile=p, reference=df)
    >>> bundle.write_evidence(evaluation=evaluation, blessing=blessing,
    ...                       card=model_card(meta, evaluation, blessing, spec.problem))
"""

from __future__ import annotations

from typing import Any

from mlcycle.artifacts import Blessing, BundleMeta, DatasetVersion, Evaluation, TrainedModel
from mlcycle.spec import LOWER_IS_BETTER, Problem
from mlcycle.version import __version__


def bundle_meta(
    *,
    name: str,
    problem: Problem,
    record: TrainedModel,
    evaluation: Evaluation,
    dataset_id: str,
    model_id: str,
    spec_hash: str,
    git_sha: str | None,
    created_at: str,
    unseen_category: Any,
    out_of_range: Any = "flag",
    seasonal: list[str] | None = None,
) -> BundleMeta:
    """``meta.json``: what serving and monitoring need to know about the model.

    ``created_at`` is the trained model's timestamp, so the same evidence makes
    the same bundle. ``out_of_range`` (``spec.serve.out_of_range``) and
    ``seasonal`` (``spec.data.features.seasonal``) travel with the bundle like
    ``unseen_category``: serving flags or rejects numeric inputs outside the
    training range, except the seasonal features (kept only if they are features).

    Example:
        >>> bundle_meta(name="flights", problem=p, record=r, evaluation=e, dataset_id=d,
        ...             model_id=m, spec_hash=h, git_sha=None, created_at=t,
        ...             unseen_category="reject").features
        ['month', 'carrier']
    """
    return BundleMeta(
        name=name,
        task=problem.task,
        target=problem.target,
        positive_label=problem.positive_label,
        classes=record.classes,
        features=record.features,
        id_column=problem.id_column,
        timestamp_column=problem.timestamp_column,
        metrics=evaluation.metrics["candidate"],
        baseline_metrics=evaluation.metrics.get("baseline", {}),
        dataset_id=dataset_id,
        model_artifact_id=model_id,
        spec_hash=spec_hash,
        git_sha=git_sha,
        mlcycle_version=__version__,
        created_at=created_at,
        unseen_category=unseen_category,
        out_of_range=out_of_range,
        seasonal=[c for c in (seasonal or []) if c in record.features],
        decision_threshold=decision_threshold(problem, evaluation),
    )


def decision_threshold(problem: Problem, evaluation: Evaluation) -> float | None:
    """The threshold serving labels with: the benefit matrix's, chosen on validation.

    Only a binary spec with ``problem.benefit`` has one; the evaluation chose it
    on the validation split (never the holdout), so the figure the report gives
    is the figure the served labels earn. ``None``: label by the most probable class.
    """
    if problem.task != "binary" or problem.benefit is None or evaluation.benefit is None:
        return None
    return evaluation.benefit.threshold


def lineage_record(
    dataset: DatasetVersion,
    *,
    ids: dict[str, str],
    spec_hash: str,
    git_sha: str | None,
    run_id: str | None,
) -> dict[str, Any]:
    """``lineage.json``: data version, raw partitions, spec, code and run of a model.

    ``ids`` holds the artifact ids of ``dataset``, ``model``, ``evaluation`` and
    ``blessing``.

    Example:
        >>> lineage_record(dataset, ids=ids, spec_hash=h, git_sha=None, run_id=r)["dataset_id"]
        'c0ffee...'
    """
    return {
        "dataset_id": ids["dataset"],
        "dataset_rows": dataset.rows,
        "source": dataset.source,
        "source_fingerprint": dataset.source_fingerprint,
        "partitions": dataset.partitions,
        "watermark": None,
        "transforms_hash": dataset.transforms_hash,
        "model_id": ids["model"],
        "evaluation_id": ids["evaluation"],
        "blessing_id": ids["blessing"],
        "spec_hash": spec_hash,
        "git_sha": git_sha,
        "run_id": run_id,
    }


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def model_card(
    meta: BundleMeta,
    evaluation: Evaluation,
    blessing: Blessing,
    problem: Problem,
    lineage: dict[str, Any] | None = None,
) -> str:
    """A generated model card: intended use, training data, metrics, slices, limitations.

    Example:
        >>> model_card(meta, evaluation, blessing, spec.problem).splitlines()[0]
        '# Model card: flights'
    """
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
        *_decision_lines(meta),
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
    lines += _metric_lines(evaluation)
    lines += ["", "## Gate", f"Blessed: **{blessing.blessed}**", ""]
    lines += [f"- {'✔' if c.passed else '✘'} {c.name}: {c.detail}" for c in blessing.checks]
    lines += [
        "",
        "## Known limitations",
        "- Judged on a single holdout from the training period; monitor drift after deployment.",
        _range_line(meta),
        "- Inputs with unseen categories are "
        + ("rejected." if meta.unseen_category == "reject" else "scored as 'unknown'."),
    ]
    weak = _weak_slices(evaluation)
    if weak:
        lines.append(f"- Weakest judged slices by {evaluation.primary_metric}: {weak}.")
    small = [s for s in evaluation.slices if not s.judged]
    if small:
        lines.append(
            f"- {len(small)} slice(s) were too small to judge; their figures are indicative only."
        )
    lines.append("")
    return "\n".join(lines)


def _range_line(meta: BundleMeta) -> str:
    """What serving does with a number outside the training range: the bundle's own policy."""
    if meta.out_of_range == "reject":
        text = (
            "- Numeric inputs outside the training ranges are rejected (HTTP 422; batch: "
            "the rejects file)"
        )
    else:
        text = (
            "- Numeric inputs outside the training ranges are scored and flagged (a warning "
            "on the row, `mlcycle_out_of_range_total` in /metrics, `out_of_range` in the "
            "prediction log), not rejected"
        )
    if meta.seasonal:
        text += f"; seasonal features ({', '.join(meta.seasonal)}) are never range-checked"
    return text + "."


def _decision_lines(meta: BundleMeta) -> list[str]:
    """How served labels are chosen: a reader must not assume 0.5 when it is not."""
    if meta.task != "binary":
        return []
    if meta.decision_threshold is None:
        return ["Labels: the most probable class (no benefit matrix, so no decision threshold)."]
    return [
        f"Decision threshold: {meta.decision_threshold:.3f} — serving and batch label a row "
        f"positive when P(positive) ≥ {meta.decision_threshold:.3f} (chosen on validation "
        "to maximise the benefit matrix)."
    ]


def _metric_lines(evaluation: Evaluation) -> list[str]:
    """The card's holdout metrics, benefit and slice tables."""
    lines: list[str] = []
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
    return lines


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
