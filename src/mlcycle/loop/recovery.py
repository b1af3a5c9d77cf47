"""What a retrain would recover: an out-of-time test of a cheap refit of the champion.

The cost rule must weigh what retraining *recovers*, not what the champion *lost*: a
champion whose benefit per row falls because the base rate moved (flights' monthly delay
rate) loses value no retrain gets back, while one whose errors follow a trend (Chicago's
ridership) loses value a retrain does get back. The two look alike in the gap between the
holdout figure and the latest window; they differ in whether the shift *persists* from
one window to the next.

So the estimate is a paired, out-of-time test, on the champion's own predictions:

1. take the two latest labelled windows since the champion's training data ends:
   ``previous`` and ``latest``;
2. learn a cheap correction of the champion's output on ``previous`` — a regression's
   intercept and slope (least squares of the label on the prediction); a binary
   classifier's decision threshold re-optimised for the benefit matrix (a monotone
   recalibration such as Platt scaling changes no decision, so the threshold is the whole
   of it for the benefit); a multiclass model's vector scaling (multinomial logistic
   regression on the log-probabilities);
3. score the corrected and the as-is champion on ``latest`` (the same rows) and take the
   per-row difference of the loss (regression: absolute error for MAE/MAPE-like metrics,
   squared error otherwise; binary: the benefit matrix's value per row, or correctness
   without one; multiclass: correctness);
4. the recoverable gain per row is the one-sided lower confidence bound of the mean
   difference (Student's t on the per-row differences, ``confidence`` 90 % by default).

A shift that persists shows a real out-of-time gain; a transient one (a correction that
fits one month and not the next) shows none or a loss. A retrain can recover more than a
linear correction (new interactions) and the correction can overfit, so this is an
estimate of the part of staleness that is a *persistent* shift of the champion's output —
the part a retrain on recent data recovers. Fewer than two labelled windows: no estimate (None), and
the cost rule does not let a signal trigger through.

The per-row differences of a time series are autocorrelated, so the t bound is
optimistic there.

Hand-written because no library offers "out-of-time value of a recalibration": the pieces
are scikit-learn (:class:`~sklearn.linear_model.LinearRegression`,
:class:`~sklearn.linear_model.LogisticRegression`) and SciPy's t distribution.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y0, y1 = rng.normal(10, 1, 300), rng.normal(12, 1, 300)   # a level shift that persists
    >>> est = estimate_recovery("regression", "mae", Labelled(y0, y0 - 2), Labelled(y1, y1 - 2))
    >>> est.gain_per_row > 1.5
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlcycle.loop.signals import RecoverySignal

__all__ = ["MIN_ROWS", "Labelled", "RecoverySignal", "estimate_recovery"]

#: Fewer labelled rows than this in either window: no estimate.
MIN_ROWS = 30
_ABSOLUTE = frozenset({"mae", "mape", "median_ae"})


@dataclass(frozen=True)
class Labelled:
    """One window's labelled rows: the labels and the champion's scores on them.

    ``scores``: regression values; binary P(positive); multiclass a (rows × classes)
    matrix in the order of ``classes``. Binary labels are 0/1 (1 = positive).
    """

    y: np.ndarray
    scores: np.ndarray
    classes: tuple[Any, ...] | None = None


def estimate_recovery(
    task: str,
    metric: str,
    previous: Labelled,
    latest: Labelled,
    *,
    threshold: float | None = None,
    benefit: dict[str, float] | None = None,
    confidence: float = 0.9,
) -> RecoverySignal | None:
    """The out-of-time gain of a refit of the champion's output (see the module docstring).

    ``threshold`` is the champion's decision threshold (binary; 0.5 when None),
    ``benefit`` the spec's benefit matrix (``tp``/``fp``/``fn``/``tn``). None when either
    window has fewer than :data:`MIN_ROWS` rows or the correction cannot be learned (a
    single class in ``previous``).

    Example:
        >>> estimate_recovery("binary", "roc_auc", prev, last, threshold=0.3,
        ...                   benefit={"tp": 50, "fp": -10, "fn": -50, "tn": 0}).units
        'benefit'
    """
    if len(previous.y) < MIN_ROWS or len(latest.y) < MIN_ROWS:
        return None
    if task == "regression":
        found = _regression(metric, previous, latest)
    elif task == "binary":
        found = _binary(previous, latest, 0.5 if threshold is None else threshold, benefit)
    else:
        found = _multiclass(previous, latest)
    if found is None:
        return None
    diff, units, method, fit = found
    mean, lower = _lower_bound(diff, confidence)
    return RecoverySignal(
        gain_per_row=max(0.0, lower),
        mean_per_row=mean,
        lower=lower,
        rows=len(diff),
        units=units,
        method=method,
        confidence=confidence,
        fit=fit,
    )


def _lower_bound(diff: np.ndarray, confidence: float) -> tuple[float, float]:
    """Mean of the paired differences and its one-sided lower bound (Student's t)."""
    mean = float(diff.mean())
    sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    if sd == 0.0:
        return mean, mean
    t = float(stats.t.ppf(confidence, len(diff) - 1))
    return mean, float(mean - t * sd / np.sqrt(len(diff)))


_Found = tuple[np.ndarray, str, str, dict[str, float]] | None


def _regression(metric: str, previous: Labelled, latest: Labelled) -> _Found:
    from sklearn.linear_model import LinearRegression

    x0 = np.asarray(previous.scores, dtype="float64").reshape(-1, 1)
    y0 = np.asarray(previous.y, dtype="float64")
    if np.ptp(x0) == 0:
        return None
    fit = LinearRegression().fit(x0, y0)
    as_is = np.asarray(latest.scores, dtype="float64")
    corrected = fit.predict(as_is.reshape(-1, 1))
    y = np.asarray(latest.y, dtype="float64")
    if metric == "mape":
        scale = np.maximum(np.abs(y), np.finfo("float64").eps)
        diff = (np.abs(y - as_is) - np.abs(y - corrected)) / scale
        units = "abs_pct_error"
    elif metric in _ABSOLUTE:
        diff, units = np.abs(y - as_is) - np.abs(y - corrected), "abs_error"
    else:
        diff, units = (y - as_is) ** 2 - (y - corrected) ** 2, "squared_error"
    params = {"intercept": float(fit.intercept_), "slope": float(fit.coef_[0])}
    return diff, units, "intercept and slope of the prediction", params


def _binary(
    previous: Labelled, latest: Labelled, threshold: float, benefit: dict[str, float] | None
) -> _Found:
    # Without a benefit matrix a decision is worth 1 when right: the gain counts rows.
    values = benefit or {"tp": 1.0, "tn": 1.0, "fp": 0.0, "fn": 0.0}
    y0 = np.asarray(previous.y).astype(bool)
    if y0.all() or not y0.any():
        return None
    best = best_threshold(y0, np.asarray(previous.scores, dtype="float64"), values)
    y = np.asarray(latest.y).astype(bool)
    s = np.asarray(latest.scores, dtype="float64")
    diff = _values(y, s >= best, values) - _values(y, s >= threshold, values)
    units = "benefit" if benefit else "correct"
    fit = {"threshold": float(best), "champion_threshold": float(threshold)}
    return diff, units, "decision threshold re-optimised on the previous window", fit


def best_threshold(y: np.ndarray, scores: np.ndarray, values: dict[str, float]) -> float:
    """The cut on ``scores`` that maximises the total benefit on these rows.

    Every distinct score is a candidate (acting on ``score ≥ cut``); rows with equal
    scores are never split.

    Example:
        >>> best_threshold(np.array([0, 0, 1, 1]), np.array([.1, .2, .7, .9]),
        ...                {"tp": 1, "tn": 1, "fp": 0, "fn": 0})
        0.7
    """
    order = np.argsort(-scores, kind="stable")
    s, yy = scores[order], y[order].astype(bool)
    # Acting on the top i rows (i = 0 … n): positives caught and negatives flagged.
    tp = np.concatenate([[0], np.cumsum(yy)])
    fp = np.concatenate([[0], np.cumsum(~yy)])
    pos, neg = tp[-1], fp[-1]
    total = (
        tp * values["tp"]
        + fp * values["fp"]
        + (pos - tp) * values["fn"]
        + (neg - fp) * values["tn"]
    )
    # Only cuts between distinct scores are reachable.
    valid = np.concatenate([[True], s[1:] != s[:-1], [True]])
    total = np.where(valid, total, -np.inf)
    i = int(np.argmax(total))
    if i == 0:
        return float(np.nextafter(s[0], np.inf))
    return float(s[i - 1])


def _values(y: np.ndarray, act: np.ndarray, values: dict[str, float]) -> np.ndarray:
    return np.select(
        [act & y, act & ~y, ~act & y], [values["tp"], values["fp"], values["fn"]], values["tn"]
    ).astype("float64")


def _multiclass(previous: Labelled, latest: Labelled) -> _Found:
    from sklearn.linear_model import LogisticRegression

    classes = np.asarray(previous.classes if previous.classes is not None else [])
    if len(classes) < 2 or len(np.unique(previous.y)) < 2:
        return None
    eps = 1e-6
    x0 = np.log(np.clip(np.asarray(previous.scores, dtype="float64"), eps, 1.0))
    x1 = np.log(np.clip(np.asarray(latest.scores, dtype="float64"), eps, 1.0))
    fit = LogisticRegression(max_iter=1000).fit(x0, np.asarray(previous.y).astype(str))
    corrected = fit.predict(x1)
    as_is = classes[np.asarray(latest.scores).argmax(axis=1)].astype(str)
    y = np.asarray(latest.y).astype(str)
    diff = (corrected == y).astype("float64") - (as_is == y).astype("float64")
    return diff, "correct", "vector scaling of the log-probabilities", {}
