"""Holdout metrics by task, plus the curves and tables a report draws.

Binary: accuracy, balanced accuracy, precision, recall, F1, MCC (at the 0.5
threshold), ROC-AUC, PR-AUC (average precision), log-loss, Brier, ECE.
Multiclass: accuracy, balanced accuracy, macro and weighted F1 / precision /
recall, log-loss, top-label ECE. Regression: RMSE, MAE, R², MAPE.

Example:
    >>> compute_metrics("binary", y_true, proba_positive, positive_label=True)["roc_auc"]
    0.71
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcycle.evaluate.core import (
    Scores,
    binary_labels,
    class_codes,
    point_metrics,
    prepare,
)


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


def encode_labels(
    task: str, y_true: Any, *, positive_label: Any = None, classes: list[Any] | None = None
) -> np.ndarray:
    """Labels in the numeric form the metric code uses (0/1, class index, or values)."""
    if task == "binary":
        return binary_labels(y_true, positive_label)
    if task == "multiclass":
        labels = list(classes) if classes is not None else sorted(set(np.asarray(y_true).tolist()))
        return class_codes(y_true, labels)
    return np.asarray(y_true, dtype="float64")


def compute_metrics(
    task: str,
    y_true: np.ndarray,
    scores: Scores,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """All metrics of ``task`` for one model's scores on labelled rows.

    Metrics that are undefined on these rows (ROC-AUC with one class) are left out.

    Example:
        >>> compute_metrics("regression", np.array([1.0, 2.0]), np.array([1.5, 2.0]))["mae"]
        0.25
    """
    y = encode_labels(task, y_true, positive_label=positive_label, classes=classes)
    return point_metrics(prepare(task, y, scores, threshold=threshold))


def confusion(
    task: str,
    y_true: Any,
    scores: Scores,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Confusion matrix: ``labels`` and ``matrix[true][predicted]`` counts."""
    if task == "binary":
        y = binary_labels(y_true, positive_label).astype(bool)
        pred = np.asarray(scores) >= threshold
        matrix = [
            [int(np.sum(~y & ~pred)), int(np.sum(~y & pred))],
            [int(np.sum(y & ~pred)), int(np.sum(y & pred))],
        ]
        positive = positive_label if positive_label is not None else True
        return {"labels": [f"not {positive}", str(positive)], "matrix": matrix}
    labels = list(classes) if classes is not None else sorted(set(np.asarray(y_true).tolist()))
    codes = class_codes(y_true, labels)
    pred = np.asarray(scores).argmax(axis=1)
    k = len(labels)
    known = codes >= 0
    counts = np.bincount(codes[known] * k + pred[known], minlength=k * k).reshape(k, k)
    return {"labels": [str(c) for c in labels], "matrix": counts.tolist()}


def reliability_curve(
    task: str,
    y_true: Any,
    scores: Scores,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    bins: int = 10,
) -> list[dict[str, float]]:
    """Equal-width bins of predicted probability: mean prediction, observed rate, rows.

    Binary: P(positive) against the positive rate. Multiclass: the top class's
    probability against how often the top class is right.
    """
    if task == "binary":
        confidence = np.asarray(scores, dtype="float64")
        outcome = binary_labels(y_true, positive_label)
    else:
        labels = list(classes) if classes is not None else sorted(set(np.asarray(y_true).tolist()))
        proba = np.asarray(scores, dtype="float64")
        confidence = proba.max(axis=1)
        outcome = (proba.argmax(axis=1) == class_codes(y_true, labels)).astype("float64")
    index = np.clip((confidence * bins).astype(np.int64), 0, bins - 1)
    rows = np.bincount(index, minlength=bins)
    mean_p = np.bincount(index, weights=confidence, minlength=bins)
    observed = np.bincount(index, weights=outcome, minlength=bins)
    return [
        {
            "low": b / bins,
            "high": (b + 1) / bins,
            "rows": int(rows[b]),
            "predicted": float(mean_p[b] / rows[b]),
            "observed": float(observed[b] / rows[b]),
        }
        for b in range(bins)
        if rows[b]
    ]


def curves(y01: np.ndarray, p: np.ndarray, points: int = 150) -> dict[str, list[list[float]]]:
    """ROC and precision–recall curves, thinned to about ``points`` points each."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if y01.min() == y01.max():
        return {"roc": [], "pr": []}
    fpr, tpr, _ = roc_curve(y01, p)
    precision, recall, _ = precision_recall_curve(y01, p)
    return {
        "roc": _thin(np.c_[fpr, tpr], points),
        "pr": _thin(np.c_[recall, precision], points),
    }


def _thin(xy: np.ndarray, points: int) -> list[list[float]]:
    if len(xy) > points:
        keep = np.unique(np.r_[np.linspace(0, len(xy) - 1, points).astype(int), len(xy) - 1])
        xy = xy[keep]
    return [[round(float(a), 5), round(float(b), 5)] for a, b in xy]
