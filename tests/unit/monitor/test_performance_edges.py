"""Realized metrics and CBPE at their edges: regression intervals against an independent
delta-method computation, perfect and tiny windows, clamped intervals, and which figures a
binary window gets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcycle.monitor.performance import Z95, auc_ci, cbpe, realized_metrics, roc_auc, wilson


def _delta_intervals(err: np.ndarray) -> tuple[list[float], list[float]]:
    """RMSE by the delta method on the MSE, MAE by the normal interval of |error|."""
    n = err.size
    rmse = math.sqrt(float(np.mean(err**2)))
    se_rmse = float(np.std(err**2, ddof=1)) / math.sqrt(n) / (2 * rmse)
    mae = float(np.mean(np.abs(err)))
    se_mae = float(np.std(np.abs(err), ddof=1)) / math.sqrt(n)
    return (
        [max(0.0, rmse - Z95 * se_rmse), rmse + Z95 * se_rmse],
        [max(0.0, mae - Z95 * se_mae), mae + Z95 * se_mae],
    )


def test_regression_intervals_are_the_delta_method_ones() -> None:
    rng = np.random.default_rng(4)
    y = rng.normal(size=400)
    pred = y + rng.normal(scale=0.5, size=400)
    out = realized_metrics("regression", y, pred)
    rmse_ci, mae_ci = _delta_intervals(pred - y)
    assert out["n"] == 400
    assert out["rmse_ci"] == pytest.approx(rmse_ci, rel=1e-12)
    assert out["mae_ci"] == pytest.approx(mae_ci, rel=1e-12)
    assert out["rmse_ci"][0] < out["rmse"] < out["rmse_ci"][1] < 1.0


def test_regression_intervals_of_two_rows_by_hand() -> None:
    # errors 1 and 3: MSE 5, RMSE √5; squared errors 1 and 9 have sd 4√2, so the MSE's
    # standard error is 4 and the RMSE's 4 / (2√5); |errors| have sd √2, se 1.
    out = realized_metrics("regression", np.array([0.0, 0.0]), np.array([1.0, 3.0]), min_labels=2)
    half = Z95 * 4 / (2 * math.sqrt(5))
    assert out["rmse"] == pytest.approx(math.sqrt(5))
    assert out["rmse_ci"] == pytest.approx([max(0.0, math.sqrt(5) - half), math.sqrt(5) + half])
    assert out["mae_ci"] == pytest.approx([max(0.0, 2.0 - Z95), 2.0 + Z95])


def test_a_perfect_or_single_row_window_has_a_zero_width_interval() -> None:
    y = np.arange(50.0)
    perfect = realized_metrics("regression", y, y.copy(), min_labels=10)
    assert perfect["rmse"] == 0.0 and perfect["rmse_ci"] == [0.0, 0.0]
    assert perfect["mae"] == 0.0 and perfect["mae_ci"] == [0.0, 0.0]
    one = realized_metrics("regression", np.array([1.0]), np.array([3.0]), min_labels=1)
    assert one["rmse_ci"] == [2.0, 2.0] and one["mae_ci"] == [2.0, 2.0]


def test_the_minimum_number_of_labels_is_inclusive_and_one_hundred_by_default() -> None:
    y = np.arange(100.0)
    assert "rmse" in realized_metrics("regression", y, y + 1)
    assert realized_metrics("regression", y[:99], y[:99] + 1) == {"n": 99}
    assert "rmse" in realized_metrics("regression", y[:40], y[:40] + 1, min_labels=40)


def test_binary_window_figures() -> None:
    labels = np.array(["True"] * 30 + ["False"] * 90)
    preds = np.array(["True"] * 30 + ["False"] * 60 + ["True"] * 30)  # 90 of 120 right
    prob = np.r_[np.linspace(0.6, 0.9, 30), np.linspace(0.1, 0.7, 90)]
    prob[5] = np.nan  # a row without a probability is left out of the AUC only
    out = realized_metrics("binary", labels, preds, prob, positive="True")
    assert out["accuracy"] == 0.75
    assert out["accuracy_ci"] == list(wilson(90, 120))
    assert out["positive_rate"] == 0.25
    keep = ~np.isnan(prob)
    y = labels == "True"
    expected = roc_auc(y[keep], prob[keep])
    assert expected is not None and out["roc_auc"] == expected
    assert out["roc_auc_ci"] == list(auc_ci(expected, 29, 90))
    # Without a positive label or probabilities: accuracy only.
    for kwargs in ({"positive": None}, {"probability": None}):
        args = {"probability": prob, "positive": "True"} | kwargs
        plain = realized_metrics(
            "binary", labels, preds, args["probability"], positive=args["positive"]
        )
        assert set(plain) == {"n", "accuracy", "accuracy_ci"}
    # A multiclass window never gets binary figures, even with both given.
    multi = realized_metrics("multiclass", labels, preds, prob, positive="True")
    assert set(multi) == {"n", "accuracy", "accuracy_ci"}


def test_intervals_are_clamped_to_zero_one() -> None:
    lo, hi = wilson(100, 100)
    assert hi == 1.0 and lo == pytest.approx(0.96301, abs=1e-5)
    lo, hi = auc_ci(0.99, 10, 10)
    assert hi == 1.0 and lo < 0.99


def test_hanley_mcneil_with_unequal_classes() -> None:
    auc, n_pos, n_neg = 0.8, 30, 200
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = math.sqrt(
        (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2))
        / (n_pos * n_neg)
    )
    assert auc_ci(auc, n_pos, n_neg) == pytest.approx((auc - Z95 * se, auc + Z95 * se), rel=1e-12)
    assert auc_ci(auc, n_neg, n_pos) != pytest.approx(auc_ci(auc, n_pos, n_neg))


def test_roc_auc_with_a_single_negative() -> None:
    y = np.array([True, True, False])
    assert roc_auc(y, np.array([0.9, 0.2, 0.5])) == 0.5


def test_cbpe_of_one_row_has_no_auc_and_of_two_rows_has_one() -> None:
    assert cbpe(np.array([0.3])) == {"accuracy": 0.7}
    # Two rows 0.2 and 0.8: P(0.8 positive, 0.2 negative) = 0.64 ordered right,
    # P(0.2 positive, 0.8 negative) = 0.04 ordered wrong: AUC 0.64 / 0.68.
    two = cbpe(np.array([0.2, 0.8]))
    assert two["accuracy"] == pytest.approx(0.8)
    assert two["roc_auc"] == pytest.approx(0.64 / 0.68)
