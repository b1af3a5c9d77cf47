"""Holdout metrics by task, and a paired bootstrap of the difference between two models.

Example:
    >>> compute_metrics("binary", y_true, proba_positive)
    {'roc_auc': 0.71, 'pr_auc': 0.45, 'log_loss': 0.49, 'brier': 0.16, 'f1': 0.31, 'accuracy': 0.78}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm

from mlcycle.spec import LOWER_IS_BETTER

Scores = np.ndarray  # binary: P(positive); multiclass: (n, k) probabilities; regression: values


def scores_for(task: str, model: Any, X: Any, positive_label: Any = None) -> Scores:
    """The scores a model gives the rows of ``X`` in the form the metrics expect."""
    if task == "regression":
        return np.asarray(model.predict(X), dtype="float64")
    proba = np.asarray(model.predict_proba(X), dtype="float64")
    if task == "binary":
        classes = list(model.classes_)
        col = classes.index(positive_label) if positive_label in classes else len(classes) - 1
        return proba[:, col]
    return proba


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))


# Binary metrics on y in {0, 1} and p = P(positive); a decision threshold of 0.5.
BINARY: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": lambda y, p: float(skm.roc_auc_score(y, p)),
    "pr_auc": lambda y, p: float(skm.average_precision_score(y, p)),
    "log_loss": _log_loss,
    "brier": lambda y, p: float(np.mean((p - y) ** 2)),
    "f1": lambda y, p: float(skm.f1_score(y, p >= 0.5, zero_division=0)),
    "accuracy": lambda y, p: float(np.mean((p >= 0.5) == y)),
}


def compute_metrics(
    task: str,
    y_true: np.ndarray,
    scores: Scores,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
) -> dict[str, float]:
    """All metrics of ``task`` for one model's scores on labelled rows."""
    if task == "binary":
        positive = positive_label if positive_label is not None else True
        y = (np.asarray(y_true) == positive).astype("float64")
        if y.min() == y.max():
            # ROC-AUC is undefined with one class; report what is defined.
            label = scores >= 0.5
            return {
                "accuracy": float(np.mean(label == y)),
                "brier": float(np.mean((scores - y) ** 2)),
            }
        return {name: fn(y, scores) for name, fn in BINARY.items()}
    if task == "multiclass":
        labels = list(classes) if classes is not None else sorted(set(y_true))
        predicted = np.asarray(labels, dtype=object)[np.argmax(scores, axis=1)]
        return {
            "accuracy": float(np.mean(predicted == np.asarray(y_true, dtype=object))),
            "f1_macro": float(skm.f1_score(y_true, predicted, average="macro", zero_division=0)),
            "log_loss": float(skm.log_loss(y_true, scores, labels=labels)),
        }
    y = np.asarray(y_true, dtype="float64")
    return {
        "rmse": float(np.sqrt(np.mean((scores - y) ** 2))),
        "mae": float(np.mean(np.abs(scores - y))),
        "r2": float(skm.r2_score(y, scores)),
    }


def paired_difference(
    task: str,
    metric: str,
    y_true: np.ndarray,
    candidate: Scores,
    reference: Scores,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Improvement of ``candidate`` over ``reference`` on the same rows, with a paired bootstrap CI.

    The improvement is signed so that positive is better whatever the metric's
    direction. Both models are scored on the *same* resampled rows, which is
    what makes the interval narrow enough to act on.
    """

    if task == "binary":
        positive = positive_label if positive_label is not None else True
        y01 = (np.asarray(y_true) == positive).astype("float64")
        fn = BINARY[metric]

        def metric_of(idx: np.ndarray, scores: Scores) -> float:
            return fn(y01[idx], scores[idx])
    else:

        def metric_of(idx: np.ndarray, scores: Scores) -> float:
            return compute_metrics(
                task, y_true[idx], scores[idx], positive_label=positive_label, classes=classes
            )[metric]

    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    n = len(y_true)
    everything = np.arange(n)
    point = sign * (metric_of(everything, candidate) - metric_of(everything, reference))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        diffs[b] = sign * (metric_of(idx, candidate) - metric_of(idx, reference))
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return {
        "improvement": float(point),
        "ci_low": float(low),
        "ci_high": float(high),
        "n_boot": float(n_boot),
        "rows": float(n),
    }
