"""Paired tests of two models on the same rows: DeLong for ROC-AUC, McNemar for accuracy.

Both return the improvement of the candidate over the reference with a
two-sided confidence interval and a p-value; the gate judges the interval's
lower bound.

DeLong, DeLong & Clarke-Pearson (1988), computed with midranks as in Sun & Xu
(2014): the AUC of each model is the mean of its "structural components"
(placement values), and the covariance of the two AUCs follows from the
sample covariances of those components.

Example:
    >>> delong(y01, new_scores, old_scores)
    {'improvement': 0.012, 'ci_low': 0.004, 'ci_high': 0.020, 'p_value': 0.003, ...}
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps


def _midranks(x: np.ndarray) -> np.ndarray:
    return np.asarray(sps.rankdata(x, method="average"), dtype="float64")


def structural_components(
    y01: np.ndarray, scores: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and the placement values of positives (V10) and negatives (V01).

    V10[i] = P(score of a random negative < score of positive i) (+½ for ties);
    V01[j] = P(score of a random positive > score of negative j) (+½ for ties).
    """
    pos = scores[y01 == 1]
    neg = scores[y01 == 0]
    m, n = len(pos), len(neg)
    ranks_all = _midranks(np.r_[pos, neg])
    v10 = (ranks_all[:m] - _midranks(pos)) / n
    v01 = 1.0 - (ranks_all[m:] - _midranks(neg)) / m
    return float(v10.mean()), v10, v01


def delong(
    y01: np.ndarray, candidate: np.ndarray, reference: np.ndarray, *, confidence: float = 0.95
) -> dict[str, float]:
    """DeLong's test of AUC(candidate) − AUC(reference) on the same rows."""
    y01 = np.asarray(y01, dtype="float64")
    m = int(y01.sum())
    n = len(y01) - m
    auc_a, v10_a, v01_a = structural_components(y01, np.asarray(candidate, dtype="float64"))
    auc_b, v10_b, v01_b = structural_components(y01, np.asarray(reference, dtype="float64"))
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    cov = s10 / m + s01 / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = auc_a - auc_b
    z_crit = float(sps.norm.ppf(0.5 + confidence / 2))
    se = math.sqrt(max(var, 0.0))
    # a zero variance (identical models) leaves nothing to test
    p_value = float(2 * sps.norm.sf(abs(diff) / se)) if se > 0 else (1.0 if diff == 0 else 0.0)
    return {
        "improvement": float(diff),
        "ci_low": float(diff - z_crit * se),
        "ci_high": float(diff + z_crit * se),
        "p_value": p_value,
        "se": se,
        "auc_candidate": auc_a,
        "auc_reference": auc_b,
        "rows": float(len(y01)),
    }


def mcnemar(
    correct_candidate: np.ndarray, correct_reference: np.ndarray, *, confidence: float = 0.95
) -> dict[str, float]:
    """McNemar's exact test and a Wald interval for the difference in accuracy (paired).

    Only discordant rows carry information: ``b`` where only the candidate is
    right, ``c`` where only the reference is. Accuracy difference = (b − c) / n.
    """
    a = np.asarray(correct_candidate, dtype=bool)
    r = np.asarray(correct_reference, dtype=bool)
    n = len(a)
    b = int(np.sum(a & ~r))
    c = int(np.sum(~a & r))
    diff = (b - c) / n
    var = (b + c - (b - c) ** 2 / n) / n**2
    se = math.sqrt(max(var, 0.0))
    z_crit = float(sps.norm.ppf(0.5 + confidence / 2))
    p_value = 1.0 if b + c == 0 else float(sps.binomtest(b, b + c, 0.5).pvalue)
    return {
        "improvement": float(diff),
        "ci_low": float(diff - z_crit * se),
        "ci_high": float(diff + z_crit * se),
        "p_value": p_value,
        "only_candidate_right": float(b),
        "only_reference_right": float(c),
        "rows": float(n),
    }
