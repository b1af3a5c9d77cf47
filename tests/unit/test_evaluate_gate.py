"""Metrics against scikit-learn, the paired comparison, and the gate policy."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlcycle.artifacts import ChampionEvidence, Evaluation, PairedComparison
from mlcycle.evaluate import compute_metrics, paired_difference
from mlcycle.registry import judge
from mlcycle.spec import Gates


def _scores(n: int = 4000, signal: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    p = 1 / (1 + np.exp(-(signal * (y * 2 - 1) + rng.normal(size=n))))
    return y, p


def test_binary_metrics_equal_sklearn() -> None:
    y, p = _scores()
    m = compute_metrics("binary", y, p, positive_label=True)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-9)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert m["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5), abs=1e-12)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5), abs=1e-12)


def test_regression_and_multiclass_metrics() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    pred = y + rng.normal(scale=0.5, size=500)
    m = compute_metrics("regression", y, pred)
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, 300)]
    proba = rng.dirichlet([1, 1, 1], 300)
    mc = compute_metrics("multiclass", labels, proba, classes=["a", "b", "c"])
    assert mc["log_loss"] == pytest.approx(skm.log_loss(labels, proba, labels=["a", "b", "c"]))


def test_paired_difference_sees_a_better_model() -> None:
    y, strong = _scores(signal=1.5)
    _, weak = _scores(signal=0.3, seed=1)
    better = paired_difference("binary", "roc_auc", y, strong, weak, positive_label=True)
    assert better["ci_low"] > 0
    same = paired_difference("binary", "roc_auc", y, strong, strong, positive_label=True)
    assert same["improvement"] == 0 and same["ci_low"] == 0
    # Lower-is-better metrics are signed so that positive still means "better".
    loss = paired_difference("binary", "log_loss", y, strong, weak, positive_label=True)
    assert loss["improvement"] > 0


def _evaluation(candidate: float, baseline: float = 0.5) -> Evaluation:
    return Evaluation(
        task="binary",
        primary_metric="roc_auc",
        rows=1000,
        metrics={
            "candidate": {"roc_auc": candidate, "log_loss": 0.4},
            "baseline": {"roc_auc": baseline, "log_loss": 0.6},
        },
    )


def test_gate_cold_start_still_needs_baseline_margin_and_thresholds() -> None:
    gates = Gates(baseline_margin=0.05, thresholds={"roc_auc": 0.7, "log_loss": 0.5})
    assert judge(_evaluation(0.72), gates).blessed
    refused = judge(_evaluation(0.53), gates)
    assert not refused.blessed
    assert {c.name for c in refused.failures} == {"beats_baseline", "threshold:roc_auc"}


def _regression(candidate_rmse: float, baseline_rmse: float) -> Evaluation:
    return Evaluation(
        task="regression",
        primary_metric="rmse",
        rows=1000,
        metrics={"candidate": {"rmse": candidate_rmse}, "baseline": {"rmse": baseline_rmse}},
    )


def test_gate_baseline_margin_for_a_lower_is_better_metric() -> None:
    # RMSE: smaller is better, so beating a baseline at 10 means going below it.
    gates = Gates(baseline_margin=0.5)
    worse = judge(_regression(12.0, 10.0), gates)
    assert not worse.blessed
    check = next(c for c in worse.checks if c.name == "beats_baseline")
    assert not check.passed
    assert check.figures["improvement"] == pytest.approx(-2.0)
    better = judge(_regression(8.0, 10.0), gates)
    assert better.blessed
    assert next(c for c in better.checks if c.name == "beats_baseline").figures[
        "improvement"
    ] == pytest.approx(2.0)
    # Better, but by less than the margin: refused.
    assert not judge(_regression(9.8, 10.0), gates).blessed


def test_gate_judges_the_lower_bound_against_the_champion() -> None:
    gates = Gates()
    lucky = PairedComparison(improvement=0.01, ci_low=-0.02, ci_high=0.04)
    refused = judge(_evaluation(0.8), gates, ChampionEvidence(version=3, comparison=lucky))
    assert not refused.blessed
    assert refused.failures[0].name == "vs_champion:non_inferiority"
    solid = ChampionEvidence(
        version=3, comparison=PairedComparison(improvement=0.01, ci_low=-0.001, ci_high=0.02)
    )
    assert judge(_evaluation(0.8), gates, solid).blessed
    strict = Gates.model_validate({"champion": {"mode": "superiority"}})
    assert not judge(_evaluation(0.8), strict, solid).blessed
    assert not judge(_evaluation(0.8), gates, ChampionEvidence(version=3)).blessed
