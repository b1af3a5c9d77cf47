"""mlcycle's calibrated decision, Benjamini-Hochberg, performance metrics and CBPE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control
from sklearn.metrics import roc_auc_score

from mlcycle.monitor import drift_report
from mlcycle.monitor.calibrate import FLOORS, NullModel, benjamini_hochberg
from mlcycle.monitor.performance import auc_ci, cbpe, realized_metrics, roc_auc, wilson


def test_benjamini_hochberg_equals_scipy() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=20), rng.uniform(0, 0.01, size=5)])
    ours = benjamini_hochberg(list(p))
    assert np.allclose(ours, false_discovery_control(p, method="bh"), atol=1e-12)
    assert benjamini_hochberg([0.01, None, 0.04]) == [0.02, None, 0.04]
    assert benjamini_hochberg([]) == []


def frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, n),
            "control": rng.normal(0.0, 1.0, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def test_large_samples_flag_only_meaningful_effects() -> None:
    """At 100k rows KS flags a 0.03σ shift; the calibrated decision does not, but flags 0.3σ."""
    reference = frame(100_000, 1)
    tiny = frame(100_000, 2, shift=0.03)
    ks = {f.feature: f for f in drift_report(reference, tiny, ["x"], test="ks").features}
    assert ks["x"].drift  # sample-size sensitivity: the problem being solved
    auto = {f.feature: f for f in drift_report(reference, tiny).features}
    assert not auto["x"].drift and auto["x"].threshold == pytest.approx(FLOORS["wasserstein"])
    moved = {f.feature: f for f in drift_report(reference, frame(100_000, 3, shift=0.3)).features}
    assert moved["x"].drift and not moved["control"].drift and not moved["colour"].drift


def test_small_windows_need_more_than_noise() -> None:
    """A 40-row window of the reference distribution must not drift, though its
    Wasserstein statistic is often above the 0.1 floor; a big shift still does."""
    reference = frame(20_000, 1)
    cache: dict[tuple[str, str, int], NullModel] = {}
    false_alarms = 0
    for seed in range(20):
        report = drift_report(reference, frame(40, 100 + seed), null_models=cache)
        false_alarms += sum(f.drift for f in report.features)
        x = report.features[0]
        assert x.threshold > FLOORS["wasserstein"]
    assert false_alarms <= 3  # 60 column tests at the 99th percentile each
    assert set(cache) == {
        ("x", "wasserstein", 32),
        ("control", "wasserstein", 32),
        ("colour", "js", 32),
    }
    shifted = drift_report(reference, frame(40, 7, shift=2.0), null_models=cache)
    assert shifted.features[0].drift


def test_p_value_tests_use_benjamini_hochberg() -> None:
    reference = frame(500, 1)
    current = frame(500, 2, shift=0.5)
    report = drift_report(reference, current, ["x", "control"], test="ks")
    raw = [f.p_value for f in report.features]
    assert [f.p_adjusted for f in report.features] == pytest.approx(
        list(false_discovery_control(raw, method="bh"))
    )
    assert [f.drift for f in report.features] == [True, False]
    assert all(f.threshold == 0.05 for f in report.features)
    # An explicit threshold is a fixed, unadjusted decision.
    fixed = drift_report(reference, current, ["x"], test="ks", threshold=0.01).features[0]
    assert fixed.p_adjusted is None and fixed.threshold == 0.01


def test_null_model_scales_with_sample_size() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    null = NullModel.fit(values, "wasserstein", "numeric")
    assert null.noise(10_000, 100) > null.noise(10_000, 10_000) > 0
    assert null.threshold(10_000, 1_000_000) == FLOORS["wasserstein"]
    psi = NullModel.fit(values, "psi", "numeric")
    assert psi.power == 2.0
    tiny = NullModel.fit(values[:6], "wasserstein", "numeric")
    assert tiny.scale == 0.0 and tiny.threshold(6, 6) == FLOORS["wasserstein"]


def test_roc_auc_and_ci_match_sklearn_and_hanley_mcneil() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(size=500) < 0.3
    score = np.round(y * 0.5 + rng.uniform(size=500), 2)  # ties on purpose
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert roc_auc(np.zeros(5, dtype=bool), np.arange(5.0)) is None
    lo, hi = auc_ci(0.8, 100, 100)
    assert lo < 0.8 < hi and hi - lo == pytest.approx(2 * 1.96 * 0.03137, abs=0.001)


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson(80, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.7112, 0.8666)
    assert wilson(0, 0) == (0.0, 1.0)


def test_realized_metrics_need_the_minimum_sample() -> None:
    labels = np.array(["True", "False"] * 30)
    preds = np.array(["True"] * 60)
    prob = np.linspace(0, 1, 60)
    assert realized_metrics("binary", labels, preds, prob, positive="True") == {"n": 60}
    full = realized_metrics("binary", labels, preds, prob, positive="True", min_labels=50)
    assert full["accuracy"] == 0.5 and len(full["accuracy_ci"]) == 2 and "roc_auc" in full
    reg = realized_metrics("regression", np.arange(200.0), np.arange(200.0) + 1, min_labels=10)
    assert reg["rmse"] == pytest.approx(1.0) and reg["mae"] == pytest.approx(1.0)


def test_cbpe_is_unbiased_for_calibrated_probabilities() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(2, 5, size=20_000)
    y = rng.uniform(size=p.size) < p
    est = cbpe(p)
    assert est["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y), abs=0.01)
    assert est["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.01)
    assert cbpe(np.array([np.nan])) == {}


def _expected_auc_by_pairs(p: np.ndarray) -> float:
    """Σ over ordered pairs i ≠ j of P(i positive, j negative) · (1 if i scores above j,
    ½ if tied), over Σ P(i positive, j negative): the definition, pair by pair."""
    pos, neg = p[:, None], (1 - p)[None, :]
    weight = pos * neg
    np.fill_diagonal(weight, 0.0)
    order = (p[:, None] > p[None, :]) + 0.5 * (p[:, None] == p[None, :])
    return float(np.sum(weight * order) / np.sum(weight))


def test_cbpe_counts_tied_scores_half() -> None:
    # Five distinct probabilities, many rows each: a pair is either ordered or tied,
    # so counting ties fully (not half) moves the estimate well away from 0.8084.
    levels = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    p = np.repeat(levels, [30, 25, 20, 15, 10])
    est = cbpe(p)
    assert est["roc_auc"] == pytest.approx(_expected_auc_by_pairs(p), abs=1e-12)
    assert est["roc_auc"] == pytest.approx(0.8084, abs=1e-4)
    # And with no ties at all, the same definition.
    distinct = np.random.default_rng(3).uniform(0.05, 0.95, size=300)
    assert cbpe(distinct)["roc_auc"] == pytest.approx(_expected_auc_by_pairs(distinct), abs=1e-12)
