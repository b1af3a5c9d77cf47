"""Benefit score: the value of a binary model's decisions under the spec's benefit matrix.

The decision threshold is chosen on the *validation* split (the one that
maximizes total benefit there) and then applied, unchanged, to the holdout:
choosing it on the holdout would report an optimistic figure.

Example:
    >>> t = best_threshold(y_valid01, p_valid, {"tp": 50, "tn": 0, "fp": -10, "fn": -50})
    >>> benefit_per_row(y_test01, p_test, t, values).mean()
    3.2
"""

from __future__ import annotations

import numpy as np


def best_threshold(y01: np.ndarray, p: np.ndarray, values: dict[str, float]) -> float:
    """The threshold t (act when p ≥ t) with the highest total benefit on these rows.

    Every distinct score is a candidate threshold, plus "never act" (t above
    every score); all are evaluated at once from cumulative counts.
    """
    order = np.argsort(-p, kind="stable")
    ps = p[order]
    ys = y01[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    # a threshold can only sit between distinct scores: keep the last row of each tie group
    last = np.r_[ps[1:] != ps[:-1], True]
    tp, fp, thresholds = tp[last], fp[last], ps[last]
    positives, negatives = ys.sum(), len(ys) - ys.sum()
    fn, tn = positives - tp, negatives - fp
    total = tp * values["tp"] + fp * values["fp"] + fn * values["fn"] + tn * values["tn"]
    never = positives * values["fn"] + negatives * values["tn"]
    best = int(np.argmax(total)) if len(total) else -1
    if best < 0 or never >= total[best]:
        return float(np.nextafter(1.0, 2.0))  # act on nothing
    return float(thresholds[best])


def benefit_per_row(
    y01: np.ndarray, p: np.ndarray, threshold: float, values: dict[str, float]
) -> np.ndarray:
    """Each row's benefit when acting on ``p ≥ threshold``."""
    act = p >= threshold
    y = y01.astype(bool)
    return np.select(
        [act & y, act & ~y, ~act & y],
        [values["tp"], values["fp"], values["fn"]],
        default=values["tn"],
    ).astype("float64")
