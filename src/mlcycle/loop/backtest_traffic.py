"""The backtest's traffic: a window's rows scored by a model, as a prediction log would hold them.

Pure functions over frames (no store, no clock): scores and their log rows, the labels
as ``mlcycle monitor labels`` stores them, a window's realized metric and benefit, and
its drift against a champion's reference sample.

Example:
    >>> scored = score_rows(spec, model.fitted, rows, threshold=0.31)
    >>> log = log_rows(scored, row_ids, ts, role="champion", version=3)
    >>> realized(spec, rows[spec.problem.target], scored, threshold=0.31)["mae"]
    2.07
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.spec import Spec

__all__ = ["Scored", "drift_alert", "labels_frame", "log_rows", "realized", "score_rows"]


@dataclass(frozen=True)
class Scored:
    """One model's answer on some rows: the scores the metrics take, and the classes."""

    scores: np.ndarray  # regression: values; binary: P(positive); multiclass: a matrix
    classes: list[Any] | None
    threshold: float | None

    def take(self, index: np.ndarray | slice) -> Scored:
        return Scored(self.scores[index], self.classes, self.threshold)


def score_rows(spec: Spec, fitted: Any, rows: pd.DataFrame, *, threshold: float | None) -> Scored:
    """Score ``rows`` with a fitted pipeline the way the evaluation does."""
    from mlcycle.pipeline.stage_ops import scores_for

    problem = spec.problem
    scores = np.asarray(scores_for(problem.task, fitted, rows, problem.positive_label))
    classes = list(getattr(fitted, "classes_", [])) or None
    return Scored(scores, classes if problem.task == "multiclass" else None, threshold)


def log_rows(
    scored: Scored, row_ids: Sequence[str], ts: pd.Series, *, role: str, version: int, task: str
) -> pd.DataFrame:
    """The prediction-log rows of one role (request id = row id: one row per request)."""
    frame = pd.DataFrame(
        {
            "request_id": list(row_ids),
            "row_id": list(row_ids),
            "ts": ts.to_numpy(),
            "role": role,
            "model_version": version,
        }
    )
    if task == "regression":
        frame["prediction"] = scored.scores.astype("float64")
    elif task == "binary":
        cut = 0.5 if scored.threshold is None else scored.threshold
        frame["probability"] = scored.scores.astype("float64")
        frame["prediction"] = np.where(scored.scores >= cut, "positive", "negative")
    else:
        assert scored.classes is not None
        for i, name in enumerate(scored.classes):
            frame[f"proba_{name}"] = scored.scores[:, i]
        frame["prediction"] = [str(scored.classes[i]) for i in scored.scores.argmax(axis=1)]
    return frame


def labels_frame(row_ids: Sequence[str], target: pd.Series) -> pd.DataFrame:
    """The labels of some rows as the monitoring tables keep them (both columns text)."""
    return pd.DataFrame({"row_id": list(row_ids), "label": target.astype(str).to_numpy()})


def realized(spec: Spec, target: pd.Series, scored: Scored) -> tuple[float | None, float | None]:
    """The primary metric on these labelled rows, and the benefit per row (binary + matrix)."""
    from mlcycle.pipeline.stage_ops import benefit_per_row, compute_metrics, encode_labels

    problem = spec.problem
    if len(target) == 0:
        return None, None
    cut = 0.5 if scored.threshold is None else scored.threshold
    metrics = compute_metrics(
        problem.task,
        target.to_numpy(),
        scored.scores,
        positive_label=problem.positive_label,
        classes=scored.classes,
        threshold=cut,
    )
    metric = metrics.get(problem.metric)
    benefit = None
    if problem.task == "binary" and problem.benefit is not None:
        y01 = encode_labels("binary", target.to_numpy(), positive_label=problem.positive_label)
        per_row = benefit_per_row(y01, scored.scores, cut, problem.benefit.model_dump())
        benefit = float(per_row.mean())
    return (None if metric is None else float(metric)), benefit


def drift_alert(spec: Spec, reference: pd.DataFrame, rows: pd.DataFrame, schema: Any) -> bool:
    """Whether at least half of the features drifted (the monitor's tests and FDR control)."""
    from mlcycle.pipeline.stage_ops import drift_report

    columns = [c.name for c in schema.features if c.name in reference.columns]
    if not columns or len(rows) == 0:
        return False
    report = drift_report(
        reference[columns],
        rows[columns],
        columns,
        schema=schema,
        test=spec.monitor.drift_test,
        fdr=spec.monitor.fdr,
        seasonal=spec.data.features.seasonal,
    )
    return len(report.drifted) >= DRIFT_SHARE_ALERT * len(report.features)


#: A window raises a drift alert when at least this share of the features drifted
#: (Evidently's "dataset drift" rule).
DRIFT_SHARE_ALERT = 0.5
