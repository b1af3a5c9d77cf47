"""Realized performance from late labels, and a label-free estimate before they come.

Metrics are computed here (monitor does not import the evaluate stage) with
95% confidence intervals:

* ``accuracy`` — Wilson score interval.
* ``roc_auc`` — Mann-Whitney from ranks; interval from the Hanley-McNeil
  standard error.
* ``rmse`` / ``mae`` — normal intervals (delta method for rmse).

A window with fewer than ``min_labels`` labels gets no metric (``None``): a
number from 20 rows would alarm more than it informs.

:func:`cbpe` is confidence-based performance estimation for binary models:
treating each probability as the chance the row is positive, the expected
confusion matrix gives the expected accuracy, and the expected ROC curve the
expected ROC AUC. It needs calibrated probabilities; its error is tracked
against the realized metric once labels arrive.

Example:
    >>> realized_metrics("binary", labels, predictions, probability)
    {'n': 812, 'accuracy': 0.81, 'accuracy_ci': [0.78, 0.84], 'roc_auc': 0.74, ...}
    >>> cbpe(probability)
    {'accuracy': 0.80, 'roc_auc': 0.73}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054


def wilson(successes: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion.

    Example:
        >>> [round(v, 3) for v in wilson(80, 100)]
        [0.711, 0.867]
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of boolean ``y`` against ``score`` (ties count half); ``None`` if one class."""
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy import stats  # here: importing scipy.stats costs ~0.5 s (see monitor.stattests)

    ranks = stats.rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_ci(auc: float, n_pos: int, n_neg: int) -> tuple[float, float]:
    """95% interval from the Hanley-McNeil (1982) standard error."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    se = math.sqrt(max(var, 0.0))
    return max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)


def realized_metrics(
    task: str,
    labels: np.ndarray,
    predictions: np.ndarray,
    probability: np.ndarray | None = None,
    *,
    positive: str | None = None,
    min_labels: int = 100,
) -> dict[str, Any]:
    """Metrics with 95% intervals over labelled rows; only ``n`` below ``min_labels``.

    ``labels`` and ``predictions`` are strings for classifiers (as in the log)
    and floats for regression; ``positive`` is the positive label as a string.
    """
    n = int(labels.size)
    out: dict[str, Any] = {"n": n}
    if n < min_labels:
        return out
    if task == "regression":
        y = labels.astype(np.float64)
        err = predictions.astype(np.float64) - y
        mse = float(np.mean(err**2))
        rmse = math.sqrt(mse)
        se_mse = float(np.std(err**2, ddof=1)) / math.sqrt(n) if n > 1 else 0.0
        se_rmse = se_mse / (2 * rmse) if rmse > 0 else 0.0
        mae = float(np.mean(np.abs(err)))
        se_mae = float(np.std(np.abs(err), ddof=1)) / math.sqrt(n) if n > 1 else 0.0
        out.update(
            rmse=rmse,
            rmse_ci=[max(0.0, rmse - Z95 * se_rmse), rmse + Z95 * se_rmse],
            mae=mae,
            mae_ci=[max(0.0, mae - Z95 * se_mae), mae + Z95 * se_mae],
        )
        return out
    correct = int(np.sum(labels == predictions))
    out["accuracy"] = correct / n
    out["accuracy_ci"] = list(wilson(correct, n))
    if task == "binary" and probability is not None and positive is not None:
        y = labels == positive
        keep = ~np.isnan(probability)
        auc = roc_auc(y[keep], probability[keep])
        if auc is not None:
            n_pos = int(y[keep].sum())
            out["roc_auc"] = auc
            out["roc_auc_ci"] = list(auc_ci(auc, n_pos, int(keep.sum()) - n_pos))
        out["positive_rate"] = float(y.mean())
    return out


def cbpe(probability: np.ndarray) -> dict[str, float]:
    """Expected accuracy and ROC AUC of a binary model from its probabilities alone.

    Each row is positive with probability ``p``: the expected number of
    correct decisions at the 0.5 threshold is Σ max(p, 1-p), and the expected
    AUC is the expected share of (positive, negative) pairs the scores order
    correctly, Σᵢ pᵢ · (expected negatives scored below i) over the expected
    number of pairs (pairs of a row with itself left out).

    Example:
        >>> cbpe(np.array([0.9, 0.8, 0.2, 0.1]))["accuracy"]
        0.85
    """
    p = probability[~np.isnan(probability)]
    if p.size == 0:
        return {}
    accuracy = float(np.mean(np.maximum(p, 1 - p)))
    uniq, inverse = np.unique(p, return_inverse=True)
    pos = np.bincount(inverse, weights=p, minlength=uniq.size)
    neg = np.bincount(inverse, weights=1 - p, minlength=uniq.size)
    neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    self_pairs = float(np.sum(p * (1 - p)))
    numerator = float(np.sum(pos * (neg_below + 0.5 * neg))) - 0.5 * self_pairs
    denominator = float(pos.sum() * neg.sum()) - self_pairs
    out = {"accuracy": accuracy}
    if denominator > 0:
        out["roc_auc"] = numerator / denominator
    return out
