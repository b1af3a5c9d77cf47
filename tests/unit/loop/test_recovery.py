"""What a retrain would recover: a persistent shift shows a gain, a transient one none."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from mlcycle.loop.policy import decide, expected_gain
from mlcycle.loop.recovery import Labelled, best_threshold, estimate_recovery
from mlcycle.loop.signals import HoldoutSignal, RecoverySignal, Signals, WindowSignal
from mlcycle.spec.loop import Loop

MATRIX = {"tp": 50.0, "fp": -10.0, "fn": -50.0, "tn": 0.0}
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def regression_window(seed: int, level: float, n: int = 365) -> Labelled:
    """A champion that predicts ``truth - level``: its error is a shift of ``level``."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(15.0, 4.0, n)
    return Labelled(truth, truth - level + rng.normal(0, 0.5, n))


def binary_window(seed: int, base_rate: float, n: int = 4000) -> Labelled:
    """A calibrated champion on a month with this delay rate (its scores rank as well)."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(np.log(base_rate / (1 - base_rate)), 1.5, n)
    p = 1 / (1 + np.exp(-logit))
    return Labelled((rng.random(n) < p).astype(int), p)


def test_a_shift_that_persists_is_recoverable() -> None:
    # Chicago's trend: the champion under-predicts by 2 in both windows.
    est = estimate_recovery("regression", "mae", regression_window(0, 2), regression_window(1, 2))
    assert est is not None and est.units == "abs_error"
    assert est.gain_per_row > 1.2 and est.lower == est.gain_per_row
    assert est.fit["intercept"] == pytest.approx(2.0, abs=0.3)


def test_a_shift_that_does_not_persist_is_not() -> None:
    # Off by +2 one window, −2 the next: a correction learned on one hurts the other.
    est = estimate_recovery("regression", "mae", regression_window(0, 2), regression_window(1, -2))
    assert est is not None
    assert est.mean_per_row < 0 and est.gain_per_row == 0.0


def test_squared_error_for_rmse() -> None:
    est = estimate_recovery("regression", "rmse", regression_window(0, 2), regression_window(1, 2))
    assert est is not None and est.units == "squared_error" and est.gain_per_row > 2.0


def test_a_base_rate_swing_recovers_nothing_for_a_calibrated_model() -> None:
    # Flights: a 30 % delay month, then a 10 % one. The champion is calibrated in both,
    # so its cost-optimal threshold holds; one re-fitted to last month's rows does no better.
    champion_threshold = 1 / 11  # MATRIX's Bayes threshold: act when 50p - 10(1-p) > -50p
    est = estimate_recovery(
        "binary",
        "roc_auc",
        binary_window(0, 0.3),
        binary_window(1, 0.1),
        threshold=champion_threshold,
        benefit=MATRIX,
    )
    assert est is not None and est.units == "benefit"
    assert est.gain_per_row == 0.0


def test_a_persistently_wrong_threshold_is_recoverable() -> None:
    est = estimate_recovery(
        "binary",
        "roc_auc",
        binary_window(0, 0.2),
        binary_window(1, 0.2),
        threshold=0.9,  # acts on almost nothing: the matrix pays 50 per caught delay
        benefit=MATRIX,
    )
    assert est is not None and est.gain_per_row > 1.0
    assert est.fit["threshold"] < 0.5


def test_without_a_benefit_matrix_a_binary_gain_counts_correct_rows() -> None:
    est = estimate_recovery(
        "binary", "accuracy", binary_window(0, 0.2), binary_window(1, 0.2), threshold=0.05
    )
    assert est is not None and est.units == "correct" and 0 < est.gain_per_row < 1


def test_multiclass_vector_scaling() -> None:
    rng = np.random.default_rng(3)
    n = 600
    y = rng.integers(0, 3, n)
    # A champion whose class 0 is always over-weighted: scaling its log-probabilities fixes it.
    proba = np.full((n, 3), 0.1)
    proba[np.arange(n), y] = 0.5
    proba[:, 0] += 0.45
    proba /= proba.sum(axis=1, keepdims=True)
    window = Labelled(y.astype(str), proba, ("0", "1", "2"))
    est = estimate_recovery("multiclass", "accuracy", window, window)
    assert est is not None and est.units == "correct" and est.gain_per_row > 0.3


def test_too_few_rows_or_one_class_gives_no_estimate() -> None:
    small = regression_window(0, 2, n=10)
    assert estimate_recovery("regression", "mae", small, regression_window(1, 2)) is None
    ones = Labelled(np.ones(100, dtype=int), np.linspace(0, 1, 100))
    assert estimate_recovery("binary", "roc_auc", ones, binary_window(1, 0.2)) is None


def test_best_threshold_never_splits_ties() -> None:
    values = {"tp": 1.0, "tn": 1.0, "fp": 0.0, "fn": 0.0}
    assert best_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.9]), values) == 0.7
    # Two rows share 0.5, one of each class: the cut goes above or below both.
    cut = best_threshold(np.array([0, 1, 0, 1]), np.array([0.1, 0.5, 0.5, 0.9]), values)
    assert cut in (0.5, 0.9)
    # Acting on nobody is best: the cut is above every score.
    assert best_threshold(np.array([0, 0]), np.array([0.3, 0.6]), values) > 0.6


def _signals(recovery: RecoverySignal | None) -> Signals:
    holdout = HoldoutSignal("roc_auc", 0.9, 0.89, 0.91, True, benefit_per_row=9.9)
    start = datetime(2024, 4, 1, tzinfo=UTC)
    # The champion "lost" 7 per row (9.9 → 2.9): a base-rate change, not staleness.
    lost = WindowSignal(
        start, NOW, rows=3000, labelled_rows=3000, realized=0.85, benefit_per_row=2.9
    )
    return Signals(
        now=NOW,
        holdout=holdout,
        windows=(lost,),
        last_retrain_at=datetime(2024, 1, 1, tzinfo=UTC),
        rows_per_day=100.0,
        recovery=recovery,
    )


def test_the_cost_rule_weighs_what_is_recovered_not_what_was_lost() -> None:
    cfg = Loop.model_validate(
        {"triggers": {"performance": {}}, "policy": {"retrain_cost": 5000, "horizon": "30d"}}
    )
    nothing = RecoverySignal(0.0, -0.4, -1.1, 3000, "benefit", "threshold", 0.9, {})
    decision = decide(cfg, _signals(nothing))
    assert decision.trigger == "performance" and not decision.retrain
    assert decision.details["lost_per_row"] == pytest.approx(7.0)
    assert decision.details["expected_gain"] == 0.0

    some = RecoverySignal(2.0, 2.5, 2.0, 3000, "benefit", "threshold", 0.9, {})
    gain, details = expected_gain(cfg, _signals(some))
    assert gain == pytest.approx(2.0 * 100 * 30)
    assert details["gain_units"] == "benefit" and decide(cfg, _signals(some)).retrain


def test_no_estimate_yet_means_no_signal_retrain() -> None:
    cfg = Loop.model_validate(
        {"triggers": {"performance": {}}, "policy": {"retrain_cost": 1, "horizon": "30d"}}
    )
    decision = decide(cfg, _signals(None))
    assert not decision.retrain and "two labelled windows" in decision.reason
