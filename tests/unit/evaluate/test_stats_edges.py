"""The paired tests and the bootstrap at their edges: no variance, no discordant rows, the
smallest holdout each test accepts, labels given in other forms, and the defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from mlcycle.errors import BadInput
from mlcycle.evaluate import bootstrap_intervals, compare, compare_models, delong, mcnemar
from mlcycle.evaluate.bootstrap import _poisson_levels, paired_bootstrap


def _pair(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(float)
    signal = y * 2 - 1
    a = 1 / (1 + np.exp(-(1.0 * signal + rng.normal(size=n))))
    b = 1 / (1 + np.exp(-(0.7 * signal + rng.normal(size=n))))
    return y, np.round(a, 2), np.round(b, 2)


# --- DeLong --------------------------------------------------------------------------


def test_delong_with_no_variance_but_a_difference_is_certain() -> None:
    # A perfect candidate against a constant reference: every placement value is the
    # same (1 for the candidate, ½ for the reference), so the variance is 0 while the
    # AUCs differ by 0.5: the interval collapses on 0.5 and p is 0, not 1.
    y = np.array([1.0] * 30 + [0.0] * 70)
    perfect = np.where(y == 1, 0.9, 0.1)
    constant = np.full(100, 0.5)
    result = delong(y, perfect, constant)
    assert result["se"] == 0.0
    assert result["improvement"] == 0.5
    assert (result["ci_low"], result["ci_high"]) == (0.5, 0.5)
    assert result["p_value"] == 0.0
    assert result["auc_candidate"] == 1.0 and result["auc_reference"] == 0.5
    assert result["rows"] == 100.0
    # The same with no difference: nothing to test, p = 1.
    same = delong(y, constant, constant)
    assert same["se"] == 0.0 and same["p_value"] == 1.0


def test_delong_reports_both_aucs_and_the_row_count() -> None:
    y, a, b = _pair(600, seed=11)
    result = delong(y, a, b)
    assert result["auc_candidate"] == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)
    assert result["auc_reference"] == pytest.approx(skm.roc_auc_score(y, b), abs=1e-12)
    assert result["rows"] == 600.0
    # A narrower confidence gives the same centre and a proportionally narrower interval.
    narrow = delong(y, a, b, confidence=0.8)
    ratio = sps.norm.ppf(0.9) / sps.norm.ppf(0.975)
    assert narrow["ci_high"] - narrow["ci_low"] == pytest.approx(
        (result["ci_high"] - result["ci_low"]) * ratio
    )


# --- McNemar -------------------------------------------------------------------------


def test_mcnemar_with_no_discordant_rows_has_p_one_and_a_zero_width_interval() -> None:
    right = np.array([True] * 70 + [False] * 30)
    result = mcnemar(right, right.copy())
    assert result["p_value"] == 1.0
    assert result["improvement"] == 0.0
    assert (result["ci_low"], result["ci_high"]) == (0.0, 0.0)
    assert result["only_candidate_right"] == 0.0 and result["only_reference_right"] == 0.0
    assert result["rows"] == 100.0


def test_mcnemar_reads_zero_one_integers_as_right_and_wrong() -> None:
    cand = [1] * 60 + [0] * 5 + [1] * 35
    ref = [0] * 60 + [1] * 5 + [1] * 35
    as_ints = mcnemar(np.array(cand), np.array(ref))
    as_bools = mcnemar(np.array(cand, dtype=bool), np.array(ref, dtype=bool))
    assert as_ints == as_bools
    assert as_ints["only_candidate_right"] == 60.0 and as_ints["only_reference_right"] == 5.0
    assert as_ints["p_value"] == pytest.approx(sps.binomtest(60, 65, 0.5).pvalue)


# --- which test, and the smallest holdout it accepts ---------------------------------


def test_each_metric_has_its_paired_test() -> None:
    assert compare.test_for("roc_auc") == "delong"
    assert compare.test_for("accuracy") == "mcnemar"
    assert compare.test_for("log_loss") == "paired_bootstrap"
    assert compare.test_for("rmse") == "paired_bootstrap"


def test_the_smallest_holdout_is_exactly_one_hundred_rows() -> None:
    y = np.array([1.0, 0.0] * 50)
    compare.check_holdout_size("binary", "roc_auc", y)  # 100 rows: accepted
    compare.check_holdout_size("regression", "rmse", np.arange(100.0))
    with pytest.raises(BadInput) as caught:
        compare.check_holdout_size("regression", "rmse", np.arange(99.0))
    err = caught.value
    assert err.what == "the holdout has 99 rows, too few for the paired_bootstrap test of rmse"
    assert err.why == "comparing with the champion needs at least 100 rows"
    assert err.fix.startswith("enlarge the holdout (prepare.split.test_fraction)")
    assert err.fix.endswith("the paired test needs ≥ 100 rows")


@pytest.mark.parametrize("positives", [10, 290])
def test_delong_needs_ten_rows_of_each_class_and_ten_are_enough(positives: int) -> None:
    y = np.zeros(300)
    y[:positives] = 1
    compare.check_holdout_size("binary", "roc_auc", y)
    fewer = y.copy()
    if positives == 10:
        fewer[0] = 0  # 9 positives
    else:
        fewer[-1] = 1  # 9 negatives
    with pytest.raises(BadInput) as caught:
        compare.check_holdout_size("binary", "roc_auc", fewer)
    pos = int(fewer.sum())
    assert caught.value.what == (
        f"the holdout has {pos} positive and {300 - pos} negative rows, "
        "too few for DeLong's test of roc_auc"
    )
    assert caught.value.why == "DeLong needs at least 10 rows of each class"
    assert caught.value.fix.startswith("enlarge the holdout")


def test_only_delong_needs_both_classes() -> None:
    # Accuracy (McNemar) and log loss (bootstrap) have no per-class minimum.
    y = np.zeros(300)
    y[:3] = 1
    compare.check_holdout_size("binary", "accuracy", y)
    compare.check_holdout_size("binary", "log_loss", y)
    # A regression target is never read as classes, even for a metric named roc_auc
    # (the policy check refuses that combination earlier).
    compare.check_holdout_size("regression", "roc_auc", np.zeros(300))


# --- compare_models: labels, thresholds and the options reach the test ---------------


def test_binary_accuracy_counts_a_score_of_one_half_as_positive() -> None:
    rng = np.random.default_rng(1)
    y = np.array(["yes", "no"] * 60)
    cand = np.where(y == "yes", 0.5, 0.2)  # right on every row (0.5 means "yes")
    ref = rng.choice([0.2, 0.8], size=120)
    result = compare_models("binary", "accuracy", y, cand, ref, positive_label="yes")
    ref_right = (ref >= 0.5) == (y == "yes")
    assert result["test"] == "mcnemar"
    assert result["metric"] == "accuracy" and result["confidence"] == 0.95
    assert result["only_candidate_right"] == float(np.sum(~ref_right))
    assert result["only_reference_right"] == 0.0
    assert result["improvement"] == pytest.approx(1.0 - ref_right.mean())


def test_multiclass_accuracy_uses_the_given_class_order() -> None:
    rng = np.random.default_rng(2)
    classes = ["c", "a", "b"]  # the model's column order, not sorted
    codes = rng.integers(0, 3, size=150)
    y = np.array(classes)[codes]
    cand = np.eye(3)[codes] * 0.8 + 0.1  # column i is classes[i]: always right
    ref = rng.dirichlet([1, 1, 1], size=150)
    result = compare_models("multiclass", "accuracy", y, cand, ref, classes=classes)
    ref_right = ref.argmax(axis=1) == codes
    assert result["test"] == "mcnemar"
    assert result["only_candidate_right"] == float(np.sum(~ref_right))
    assert result["only_reference_right"] == 0.0
    assert result["rows"] == 150.0


def test_the_confidence_and_the_bootstrap_options_reach_the_test() -> None:
    y, a, b = _pair(400, seed=9)
    d = compare_models("binary", "roc_auc", y, a, b, positive_label=1.0, confidence=0.8)
    assert d["confidence"] == 0.8
    assert d["ci_low"] == pytest.approx(delong(y, a, b, confidence=0.8)["ci_low"])
    m = compare_models("binary", "accuracy", y, a, b, positive_label=1.0, confidence=0.8)
    right_a, right_b = (a >= 0.5) == (y == 1), (b >= 0.5) == (y == 1)
    assert m["ci_low"] == pytest.approx(mcnemar(right_a, right_b, confidence=0.8)["ci_low"])
    boot = compare_models(
        "binary", "brier", y, a, b, positive_label=1.0, n_boot=200, seed=5, confidence=0.8
    )
    direct = paired_bootstrap("binary", "brier", y, a, b, n_boot=200, seed=5, confidence=0.8)
    assert {k: boot[k] for k in direct} == direct
    # The defaults are the documented ones: 1000 resamples, seed 0, 95%.
    default = compare_models("binary", "brier", y, a, b, positive_label=1.0)
    assert default["n_boot"] == 1000.0 and default["confidence"] == 0.95
    assert default["ci_low"] == paired_bootstrap("binary", "brier", y, a, b, seed=0)["ci_low"]


# --- bootstrap -----------------------------------------------------------------------


def test_poisson_levels_are_the_poisson_one_cdf_on_a_16_bit_scale() -> None:
    expected = [math.floor(65536 * sps.poisson.cdf(k, 1.0)) for k in range(12)]
    assert _poisson_levels().tolist() == expected


def test_no_resamples_give_point_intervals_and_one_resample_is_a_draw() -> None:
    y, a, _ = _pair(500, seed=12)
    none = bootstrap_intervals("binary", y, a, n_boot=0)
    assert none["roc_auc"] == {"value": none["roc_auc"]["value"]} | {
        "low": none["roc_auc"]["value"],
        "high": none["roc_auc"]["value"],
    }
    assert none["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(y, a))
    one = bootstrap_intervals("binary", y, a, n_boot=1)
    assert one["roc_auc"]["low"] == one["roc_auc"]["high"] != one["roc_auc"]["value"]


def test_bootstrap_intervals_use_the_decision_threshold_and_the_documented_defaults() -> None:
    y, a, _ = _pair(500, seed=13)
    at_03 = bootstrap_intervals("binary", y, a, n_boot=0, threshold=0.3)
    assert at_03["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, a >= 0.3))
    default = bootstrap_intervals("binary", y, a)
    assert default["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, a >= 0.5))
    assert default == bootstrap_intervals("binary", y, a, n_boot=1000, seed=0, threshold=0.5)


def _multinomial_paired_widths(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, loss: str, n_boot: int = 2000
) -> float:
    """Width of the 95% percentile interval of a paired, row-resampling bootstrap."""
    rng = np.random.default_rng(21)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if loss == "brier":
            diffs[i] = np.mean((b[idx] - y[idx]) ** 2) - np.mean((a[idx] - y[idx]) ** 2)
        else:
            rmse_a = np.sqrt(np.mean((a[idx] - y[idx]) ** 2))
            diffs[i] = np.sqrt(np.mean((b[idx] - y[idx]) ** 2)) - rmse_a
    low, high = np.quantile(diffs, [0.025, 0.975])
    return float(high - low)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_paired_bootstrap_keeps_rows_paired(task: str) -> None:
    # Two models whose errors are nearly the same on every row: only a paired
    # resample (both scored on the same rows) gives the narrow interval the data
    # supports; resampling them independently would be many times wider.
    rng = np.random.default_rng(20)
    n = 1500
    if task == "binary":
        y = (rng.random(n) < 0.4).astype(float)
        a = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, n), 0.01, 0.99)
        b = np.clip(a + rng.normal(0, 0.02, n), 0.01, 0.99)
        metric = "brier"
    else:
        y = rng.normal(size=n)
        a = y + rng.normal(0, 0.5, n)
        b = a + rng.normal(0, 0.05, n)
        metric = "rmse"
    result = paired_bootstrap(task, metric, y, a, b, n_boot=2000, seed=3)
    width = result["ci_high"] - result["ci_low"]
    assert width == pytest.approx(_multinomial_paired_widths(y, a, b, metric), rel=0.12)
    assert result["rows"] == float(n) and result["n_boot"] == 2000.0
    assert paired_bootstrap(task, metric, y, a, b) == paired_bootstrap(
        task, metric, y, a, b, n_boot=1000, seed=0
    )


def test_resample_counts_give_exactly_n_boot_rows_across_chunks() -> None:
    from mlcycle.evaluate.bootstrap import CHUNK_CELLS, resample_counts

    n = CHUNK_CELLS // 2 + 1  # two resamples no longer fit in a chunk: one per chunk
    chunks = [c.shape for c in resample_counts(n, 3, seed=0)]
    assert chunks == [(1, n), (1, n), (1, n)]
    n = CHUNK_CELLS // 3  # three resamples per chunk, five asked for: 3 + 2
    assert [c.shape[0] for c in resample_counts(n, 5, seed=0)] == [3, 2]


def test_paired_difference_encodes_raw_labels_and_passes_its_options_on() -> None:
    from mlcycle.evaluate import paired_difference

    y01, a, b = _pair(300, seed=14)
    raw = np.where(y01 == 1, "yes", "no")
    got = paired_difference(
        "binary", "brier", raw, a, b, positive_label="yes", n_boot=200, seed=4, confidence=0.8
    )
    assert got == paired_bootstrap("binary", "brier", y01, a, b, n_boot=200, seed=4, confidence=0.8)
    assert paired_difference("binary", "brier", raw, a, b, positive_label="yes") == (
        paired_bootstrap("binary", "brier", y01, a, b, n_boot=1000, seed=0, confidence=0.95)
    )
    rng = np.random.default_rng(15)
    classes = ["c", "a", "b"]  # the model's column order, not sorted
    codes = rng.integers(0, 3, size=200)
    pa, pb = rng.dirichlet([2, 1, 1], size=200), rng.dirichlet([1, 1, 1], size=200)
    multi = paired_difference(
        "multiclass", "log_loss", np.array(classes)[codes], pa, pb, classes=classes, n_boot=100
    )
    assert multi == paired_bootstrap("multiclass", "log_loss", codes, pa, pb, n_boot=100)
