"""Every metric against scikit-learn (or an independent loop), point and weighted."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlcycle.evaluate import compute_metrics
from mlcycle.evaluate.core import class_codes, point_metrics, prepare, weighted_metrics
from mlcycle.evaluate.metrics import confusion, reliability_curve
from mlcycle.spec import METRICS_BY_TASK


def _binary(n: int = 3000, seed: int = 0, rounded: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    p = 1 / (1 + np.exp(-((y * 2 - 1) + rng.normal(size=n))))
    return y, (np.round(p, 2) if rounded else p)  # rounding makes many ties


def _ece(y01: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    total = 0.0
    index = np.clip((p * bins).astype(int), 0, bins - 1)
    for b in range(bins):
        rows = index == b
        if rows.any():
            total += rows.sum() / len(p) * abs(y01[rows].mean() - p[rows].mean())
    return total


def test_binary_metrics_equal_sklearn_with_ties() -> None:
    y, p = _binary()
    m = compute_metrics("binary", y, p, positive_label=True)
    pred = p >= 0.5
    expected = {
        "roc_auc": skm.roc_auc_score(y, p),
        "pr_auc": skm.average_precision_score(y, p),
        "log_loss": skm.log_loss(y, p),
        "brier": skm.brier_score_loss(y, p),
        "f1": skm.f1_score(y, pred),
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "mcc": skm.matthews_corrcoef(y, pred),
        "ece": _ece(y.astype(float), p),
    }
    assert set(m) == set(METRICS_BY_TASK["binary"])
    for name, value in expected.items():
        assert m[name] == pytest.approx(value, abs=1e-9), name


def test_binary_labels_other_than_booleans_and_one_class() -> None:
    y, p = _binary(500, seed=3)
    labels = np.where(y, "late", "on_time")
    m = compute_metrics("binary", labels, p, positive_label="late")
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    only = compute_metrics("binary", np.zeros(20, bool), np.linspace(0, 1, 20), positive_label=True)
    assert "roc_auc" not in only and "pr_auc" not in only and "accuracy" in only


def test_multiclass_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c", "d"]
    truth = np.array(classes)[rng.integers(0, 4, 800)]
    proba = rng.dirichlet([1, 1, 1, 1], 800)
    proba[np.arange(800), class_codes(truth, classes)] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    m = compute_metrics("multiclass", truth, proba, classes=classes)
    pred = np.array(classes)[proba.argmax(axis=1)]
    assert set(m) == set(METRICS_BY_TASK["multiclass"])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(truth, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(truth, proba, labels=classes))
    for avg in ("macro", "weighted"):
        assert m[f"f1_{avg}"] == pytest.approx(skm.f1_score(truth, pred, average=avg))
        assert m[f"precision_{avg}"] == pytest.approx(
            skm.precision_score(truth, pred, average=avg, zero_division=0)
        )
        assert m[f"recall_{avg}"] == pytest.approx(skm.recall_score(truth, pred, average=avg))
    top_right = (pred == truth).astype(float)
    assert m["ece"] == pytest.approx(_ece(top_right, proba.max(axis=1)))


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 3, size=600)
    pred = y + rng.normal(scale=1.0, size=600)
    m = compute_metrics("regression", y, pred)
    assert set(m) == set(METRICS_BY_TASK["regression"])
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_integer_weights_equal_repeating_the_rows(task: str) -> None:
    """The bootstrap's weighted path = the metrics on the resample written out row by row."""
    rng = np.random.default_rng(4)
    n = 400
    if task == "binary":
        y, s = _binary(n, seed=5)
        y = y.astype(float)
    elif task == "multiclass":
        y = rng.integers(0, 3, n)
        s = rng.dirichlet([2, 2, 2], n)
    else:
        y = rng.normal(size=n)
        s = y + rng.normal(size=n)
    counts = rng.poisson(1.0, n).astype(float)
    prepared = prepare(task, y, s)
    order = prepared.order if prepared.order is not None else np.arange(n)
    weighted = weighted_metrics(prepared, counts[order][None, :])
    expanded = point_metrics(
        prepare(
            task, np.repeat(y, counts.astype(int), axis=0), np.repeat(s, counts.astype(int), axis=0)
        )
    )
    for name, value in expanded.items():
        assert weighted[name][0] == pytest.approx(value, abs=1e-9), name


def test_confusion_and_reliability_curve() -> None:
    y, p = _binary(1000, seed=6, rounded=False)
    cm = confusion("binary", y, p, positive_label=True)
    assert cm["matrix"] == skm.confusion_matrix(y, p >= 0.5).tolist()
    curve = reliability_curve("binary", y, p, positive_label=True, bins=10)
    assert sum(b["rows"] for b in curve) == 1000
    first = curve[0]
    rows = p < first["high"]
    assert first["observed"] == pytest.approx(y[rows].mean())
    assert first["predicted"] == pytest.approx(p[rows].mean())
    classes = ["x", "y", "z"]
    truth = np.array(classes)[np.random.default_rng(0).integers(0, 3, 90)]
    proba = np.random.default_rng(1).dirichlet([1, 1, 1], 90)
    mc = confusion("multiclass", truth, proba, classes=classes)
    pred = np.array(classes)[proba.argmax(axis=1)]
    assert mc["matrix"] == skm.confusion_matrix(truth, pred, labels=classes).tolist()
