"""Bootstrap intervals, DeLong, McNemar and the benefit threshold against independent
computations (brute force, scipy, the bootstrap itself)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from mlcycle.errors import BadInput
from mlcycle.evaluate import bootstrap_intervals, compare_models, delong, mcnemar
from mlcycle.evaluate.benefit import benefit_per_row, best_threshold
from mlcycle.evaluate.bootstrap import paired_bootstrap, resample_counts
from mlcycle.evaluate.stats import structural_components


def _pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    signal = y * 2 - 1
    a = 1 / (1 + np.exp(-(1.0 * signal + rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(0.7 * signal + rng.normal(size=n))))
    return y, np.round(a, 2), np.round(b, 2)


def test_poisson_counts_are_seeded_and_have_mean_and_variance_one() -> None:
    a = np.concatenate(list(resample_counts(2000, 300, seed=7)))
    b = np.concatenate(list(resample_counts(2000, 300, seed=7)))
    assert a.shape == (300, 2000) and np.array_equal(a, b)
    assert a.mean() == pytest.approx(1.0, abs=0.01)
    assert a.var() == pytest.approx(1.0, abs=0.02)
    assert not np.array_equal(a, np.concatenate(list(resample_counts(2000, 300, seed=8))))


def test_bootstrap_intervals_cover_the_point_and_agree_with_delong_width() -> None:
    y, a, _ = _pair(3000)
    ci = bootstrap_intervals("binary", y, a, n_boot=1000, seed=1)
    for name, c in ci.items():
        assert c["low"] <= c["value"] <= c["high"], name
    # The AUC interval's width matches DeLong's normal-theory width within 15 %.
    _, v10, v01 = structural_components(y, a)
    se = np.sqrt(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))
    width = ci["roc_auc"]["high"] - ci["roc_auc"]["low"]
    assert width == pytest.approx(2 * 1.96 * se, rel=0.15)
    again = bootstrap_intervals("binary", y, a, n_boot=1000, seed=1)
    assert again == ci  # seeded


def test_structural_components_equal_brute_force_and_mann_whitney() -> None:
    y, a, _ = _pair(300, seed=2)
    auc, v10, v01 = structural_components(y, a)
    pos, neg = a[y == 1], a[y == 0]
    # Placement values by comparing every pair (O(m·n)), with half credit for ties.
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert np.allclose(v10, wins.mean(axis=1))
    assert np.allclose(v01, wins.mean(axis=0))
    u = sps.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    assert auc == pytest.approx(u / (len(pos) * len(neg)))
    assert auc == pytest.approx(skm.roc_auc_score(y, a))


def test_delong_variance_matches_brute_force_and_the_paired_bootstrap() -> None:
    y, a, b = _pair(2000, seed=3)
    result = delong(y, a, b)
    # Independent computation of DeLong's variance from the brute-force components.
    pos, neg = y == 1, y == 0

    def components(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        return w.mean(axis=1), w.mean(axis=0)

    (a10, a01), (b10, b01) = components(a), components(b)
    d10, d01 = a10 - b10, a01 - b01
    var = d10.var(ddof=1) / pos.sum() + d01.var(ddof=1) / neg.sum()
    assert result["se"] == pytest.approx(np.sqrt(var), rel=1e-9)
    assert result["improvement"] == pytest.approx(skm.roc_auc_score(y, a) - skm.roc_auc_score(y, b))
    assert result["p_value"] == pytest.approx(
        2 * sps.norm.sf(abs(result["improvement"]) / np.sqrt(var))
    )
    boot = paired_bootstrap("binary", "roc_auc", y, a, b, n_boot=1000, seed=4)
    assert boot["ci_low"] == pytest.approx(result["ci_low"], abs=0.01)
    assert boot["ci_high"] == pytest.approx(result["ci_high"], abs=0.01)
    same = delong(y, a, a)
    assert same["improvement"] == 0 and same["p_value"] == 1.0


def test_mcnemar_counts_interval_and_exact_p_value() -> None:
    rng = np.random.default_rng(5)
    a = rng.random(500) < 0.8
    b = rng.random(500) < 0.75
    result = mcnemar(a, b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    assert result["only_candidate_right"] == only_a
    assert result["improvement"] == pytest.approx(a.mean() - b.mean())
    assert result["p_value"] == pytest.approx(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    assert result["ci_low"] < result["improvement"] < result["ci_high"]


def test_mcnemar_interval_is_the_paired_wald_interval() -> None:
    # b = 60 rows only the candidate gets right, c = 5 only the reference, 35 both:
    # diff = 0.55, var = (b + c - (b - c)^2 / n) / n^2 = (65 - 30.25) / 1e4,
    # so 0.55 -/+ 1.959964 * 0.058949 = (0.43446, 0.66554). Dropping the
    # -(b-c)^2/n term widens it to (0.39198, 0.70802).
    cand = np.array([True] * 60 + [False] * 5 + [True] * 35)
    ref = np.array([False] * 60 + [True] * 5 + [True] * 35)
    result = mcnemar(cand, ref)
    half = sps.norm.ppf(0.975) * math.sqrt((65 - 55**2 / 100) / 100**2)
    assert result["improvement"] == pytest.approx(0.55)
    assert result["ci_low"] == pytest.approx(0.55 - half, abs=1e-9)
    assert result["ci_high"] == pytest.approx(0.55 + half, abs=1e-9)
    assert result["ci_low"] == pytest.approx(0.43446, abs=1e-4)
    assert result["ci_high"] == pytest.approx(0.66554, abs=1e-4)


def test_lower_is_better_metrics_are_signed_so_positive_means_better() -> None:
    y, a, b = _pair(1500, seed=6)
    loss = paired_bootstrap("binary", "log_loss", y, a, b, n_boot=200)
    assert loss["improvement"] == pytest.approx(skm.log_loss(y, b) - skm.log_loss(y, a), abs=1e-6)
    assert loss["improvement"] > 0


def test_compare_models_picks_the_test_and_refuses_a_small_holdout() -> None:
    y, a, b = _pair(1000, seed=7)
    assert compare_models("binary", "roc_auc", y, a, b, positive_label=1.0)["test"] == "delong"
    assert compare_models("binary", "accuracy", y, a, b, positive_label=1.0)["test"] == "mcnemar"
    boot = compare_models("binary", "brier", y, a, b, positive_label=1.0, n_boot=100)
    assert boot["test"] == "paired_bootstrap"
    with pytest.raises(BadInput, match="too few for the delong test"):
        compare_models("binary", "roc_auc", y[:50], a[:50], b[:50], positive_label=1.0)
    few_pos = np.zeros(300)
    few_pos[:4] = 1
    with pytest.raises(BadInput, match="DeLong needs at least 10 rows of each class"):
        compare_models("binary", "roc_auc", few_pos, a[:300], b[:300], positive_label=1.0)


def test_benefit_threshold_is_the_best_of_a_brute_force_search() -> None:
    y, a, _ = _pair(800, seed=8)
    values = {"tp": 50.0, "tn": 0.0, "fp": -10.0, "fn": -50.0}
    t = best_threshold(y, a, values)
    candidates = [*np.unique(a), 1.01]
    best = max(candidates, key=lambda c: benefit_per_row(y, a, c, values).sum())
    assert benefit_per_row(y, a, t, values).sum() == pytest.approx(
        benefit_per_row(y, a, best, values).sum()
    )
    never = best_threshold(y, a, {"tp": -1.0, "tn": 1.0, "fp": -5.0, "fn": 0.0})
    assert never > 1.0  # acting never pays: act on nothing
