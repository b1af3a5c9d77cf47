"""The holdout evaluation as a whole: metrics with intervals per model, slices,
calibration, confusion matrix, curves and the benefit score.

Example:
    >>> evaluation, details = evaluate_holdout(
    ...     "binary", "roc_auc", y_test, {"candidate": p, "baseline": p0},
    ...     positive_label=True, slice_frame=test[["origin"]],
    ... )
    >>> evaluation.intervals["candidate"]["roc_auc"]
    (0.70, 0.72)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import BenefitScore, Evaluation, SliceMetrics
from mlcycle.errors import BadInput
from mlcycle.evaluate.benefit import benefit_per_row, best_threshold
from mlcycle.evaluate.bootstrap import bootstrap_intervals, paired_bootstrap, resample_counts
from mlcycle.evaluate.core import Scores
from mlcycle.evaluate.learning import CurveOptions
from mlcycle.evaluate.metrics import confusion, curves, encode_labels, reliability_curve


@dataclass
class Options:
    """How to evaluate (the spec's ``evaluate:`` section)."""

    n_boot: int = 1000
    seed: int = 0
    confidence: float = 0.95
    slices: list[str] = field(default_factory=list)
    min_slice_rows: int = 200
    max_slice_values: int = 50
    bins: int = 10
    # Off unless the spec turns it on (options_from): it refits, and only the Evaluate
    # step has the training rows to refit on.
    learning_curve: CurveOptions = field(default_factory=lambda: CurveOptions(enabled=False))


def evaluate_holdout(
    task: str,
    primary_metric: str,
    y_true: Any,
    scores: dict[str, Scores],
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    slice_frame: pd.DataFrame | None = None,
    options: Options | None = None,
    benefit: dict[str, float] | None = None,
    valid: tuple[Any, dict[str, Scores]] | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """Evaluate every model in ``scores`` (role → scores) on the same holdout rows.

    Returns the :class:`Evaluation` record (metrics, intervals, slices, benefit)
    and the details a report draws (curves, calibration, confusion matrices).
    ``valid`` (labels and role → scores on the validation split) is where the
    benefit threshold is chosen.
    """
    opts = options or Options()
    y = encode_labels(task, y_true, positive_label=positive_label, classes=classes)
    metrics: dict[str, dict[str, float]] = {}
    intervals: dict[str, dict[str, tuple[float, float]]] = {}
    details: dict[str, Any] = {"roles": {}}
    for offset, (role, s) in enumerate(scores.items()):
        ci = bootstrap_intervals(
            task, y, s, n_boot=opts.n_boot, seed=opts.seed + offset, confidence=opts.confidence
        )
        metrics[role] = {name: c["value"] for name, c in ci.items()}
        intervals[role] = {
            name: (c["low"], c["high"])
            for name, c in ci.items()
            if np.isfinite(c["low"]) and np.isfinite(c["high"])
        }
        details["roles"][role] = details_for(task, y_true, s, positive_label, classes, opts.bins)
    evaluation = Evaluation(
        task=task,
        primary_metric=primary_metric,
        rows=len(y),
        metrics=metrics,
        intervals=intervals,
        confidence=opts.confidence,
        n_boot=opts.n_boot,
        seed=opts.seed,
        slices=slice_metrics(task, y, scores, slice_frame, opts) if slice_frame is not None else [],
    )
    if task == "binary" and benefit is not None and valid is not None:
        evaluation.benefit = benefit_score(y, scores, benefit, valid, positive_label, opts)
    return evaluation, details


def details_for(
    task: str, y_true: Any, s: Scores, positive_label: Any, classes: list[Any] | None, bins: int
) -> dict[str, Any]:
    """What the report draws for one model: confusion matrix, reliability curve, curves."""
    out: dict[str, Any] = {}
    if task in ("binary", "multiclass"):
        out["confusion"] = confusion(
            task, y_true, s, positive_label=positive_label, classes=classes
        )
        out["calibration"] = reliability_curve(
            task, y_true, s, positive_label=positive_label, classes=classes, bins=bins
        )
    if task == "binary":
        out["curves"] = curves(encode_labels(task, y_true, positive_label=positive_label), s)
    if task == "regression":
        y = np.asarray(y_true, dtype="float64")
        take = np.linspace(0, len(y) - 1, min(len(y), 400)).astype(int)
        out["scatter"] = [[float(y[i]), float(s[i])] for i in take]
    return out


def slice_masks(
    slice_frame: pd.DataFrame, columns: list[str], max_values: int
) -> list[tuple[str, str, np.ndarray]]:
    """(column, value, row mask) for each declared slice, most frequent values first."""
    out = []
    for column in columns:
        if column not in slice_frame.columns:
            raise BadInput(
                f"evaluate.slices names '{column}', which the holdout does not have",
                f"columns: {', '.join(map(str, slice_frame.columns))}",
                "name a column of the dataset in evaluate.slices",
            )
        values = slice_frame[column].astype("string").fillna("<null>")
        for value in values.value_counts().index[:max_values]:
            out.append((column, str(value), (values == value).to_numpy()))
    return out


def slice_metrics(
    task: str,
    y: np.ndarray,
    scores: dict[str, Scores],
    slice_frame: pd.DataFrame,
    opts: Options,
) -> list[SliceMetrics]:
    """Metrics (with intervals when the slice is large enough to be judged) per slice."""
    out = []
    for i, (column, value, mask) in enumerate(
        slice_masks(slice_frame, opts.slices, opts.max_slice_values)
    ):
        rows = int(mask.sum())
        judged = rows >= opts.min_slice_rows
        metrics: dict[str, dict[str, float]] = {}
        intervals: dict[str, dict[str, tuple[float, float]]] = {}
        for role, s in scores.items():
            ci = bootstrap_intervals(
                task,
                y[mask],
                s[mask],
                n_boot=opts.n_boot if judged else 0,
                seed=opts.seed + 1000 + i,
                confidence=opts.confidence,
            )
            metrics[role] = {name: c["value"] for name, c in ci.items()}
            if judged:
                intervals[role] = {
                    name: (c["low"], c["high"])
                    for name, c in ci.items()
                    if np.isfinite(c["low"]) and np.isfinite(c["high"])
                }
        out.append(
            SliceMetrics(
                column=column,
                value=value,
                rows=rows,
                judged=judged,
                metrics=metrics,
                intervals=intervals,
            )
        )
    return out


def compare_slices(
    task: str,
    metric: str,
    y_true: Any,
    candidate: Scores,
    reference: Scores,
    slice_frame: pd.DataFrame,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    options: Options | None = None,
) -> list[dict[str, Any]]:
    """Paired bootstrap of ``metric``'s improvement within each slice (judged ones only)."""
    opts = options or Options()
    y = encode_labels(task, y_true, positive_label=positive_label, classes=classes)
    out: list[dict[str, Any]] = []
    for i, (column, value, mask) in enumerate(
        slice_masks(slice_frame, opts.slices, opts.max_slice_values)
    ):
        rows = int(mask.sum())
        entry: dict[str, Any] = {"column": column, "value": value, "rows": rows}
        if rows < opts.min_slice_rows:
            out.append(entry | {"judged": False})
            continue
        ys = y[mask]
        if task == "binary" and ys.min() == ys.max() and metric in ("roc_auc", "pr_auc"):
            out.append(entry | {"judged": False, "note": "one class only"})
            continue
        result = paired_bootstrap(
            task,
            metric,
            ys,
            candidate[mask],
            reference[mask],
            n_boot=opts.n_boot,
            seed=opts.seed + 2000 + i,
            confidence=opts.confidence,
        )
        out.append(result | entry | {"judged": True})
    return out


def benefit_score(
    y: np.ndarray,
    scores: dict[str, Scores],
    values: dict[str, float],
    valid: tuple[Any, dict[str, Scores]],
    positive_label: Any,
    opts: Options,
) -> BenefitScore:
    """Mean benefit per holdout row at the threshold that was best on validation."""
    y_valid = encode_labels("binary", valid[0], positive_label=positive_label)
    thresholds = {
        role: best_threshold(y_valid, s, values) for role, s in valid[1].items() if role in scores
    }
    per_row = {role: benefit_per_row(y, scores[role], t, values) for role, t in thresholds.items()}
    interval = None
    if "candidate" in per_row and opts.n_boot > 0:
        row_values = per_row["candidate"]
        means = np.concatenate(
            [
                (W @ row_values) / W.sum(axis=1)
                for W in resample_counts(len(y), opts.n_boot, opts.seed + 7)
            ]
        )
        alpha = (1 - opts.confidence) / 2
        low, high = np.quantile(means, [alpha, 1 - alpha])
        interval = (float(low), float(high))
    return BenefitScore(
        threshold=thresholds.get("candidate", 0.5),
        per_row={role: float(v.mean()) for role, v in per_row.items()},
        interval=interval,
        baseline_threshold=thresholds.get("baseline"),
    )
