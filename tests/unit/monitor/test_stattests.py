"""The drift statistics against SciPy and against hand computations."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from mlcycle.errors import BadInput
from mlcycle.monitor import stattests as st

REL = 1e-9


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- helpers built independently of the module -------------------------------------


def counts_by_hand(ref: list[str], cur: list[str]) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(set(ref) | set(cur))
    r, c = Counter(ref), Counter(cur)
    return np.array([r[k] for k in keys], float), np.array([c[k] for k in keys], float)


def decile_proportions(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The documented numeric binning, rebuilt with np.histogram."""
    inner = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
    low = min(ref.min(), cur.min()) - 1.0
    high = max(ref.max(), cur.max()) + 1.0
    edges = np.concatenate([[low], inner, [high]])
    p = np.histogram(ref, edges)[0] / ref.size
    q = np.histogram(cur, edges)[0] / cur.size
    return p, q


def categories(seed: int, n: int, weights: list[float]) -> np.ndarray:
    labels = np.array([f"cat{i}" for i in range(len(weights))])
    w = np.asarray(weights) / sum(weights)
    return labels[rng(seed).choice(len(w), size=n, p=w)]


# --- KS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "shift"), [(50, 70, 0.0), (800, 900, 0.3), (12_000, 15_000, 0.05)]
)
def test_ks_equals_scipy(n: int, m: int, shift: float) -> None:
    ref = rng(1).normal(size=n)
    cur = rng(2).normal(shift, 1.0, size=m)
    expected = stats.ks_2samp(ref, cur)
    assert st.ks(ref, cur) == (float(expected.statistic), float(expected.pvalue))


def test_ks_drops_nan_and_inf() -> None:
    ref = rng(3).normal(size=300)
    cur = rng(4).normal(size=200)
    dirty = np.concatenate([ref, [np.nan, np.inf, -np.inf]])
    assert st.ks(dirty, cur) == st.ks(ref, cur)


# --- chi-square ----------------------------------------------------------------------


def test_chi2_equals_scipy_built_as_documented() -> None:
    ref = categories(5, 700, [5, 3, 2, 1])
    cur = categories(6, 450, [4, 4, 2, 1])
    r, c = counts_by_hand(list(ref), list(cur))
    expected = stats.chisquare(c, r / r.sum() * c.sum())
    stat, p = st.chi2(ref, cur)
    assert close(stat, float(expected.statistic))
    assert p is not None and close(p, float(expected.pvalue))


def test_chi2_category_missing_in_current_counts_as_zero() -> None:
    ref = np.array(["a"] * 40 + ["b"] * 40 + ["c"] * 20)
    cur = np.array(["a"] * 30 + ["b"] * 30)
    expected = stats.chisquare([30, 30, 0], [24.0, 24.0, 12.0])
    stat, p = st.chi2(ref, cur)
    assert close(stat, float(expected.statistic))
    assert p is not None and close(p, float(expected.pvalue))


def test_chi2_new_category_is_infinite() -> None:
    assert st.chi2(np.array(["a", "b"] * 10), np.array(["a", "b", "z"] * 10)) == (math.inf, 0.0)


def test_chi2_one_shared_category_is_no_drift() -> None:
    assert st.chi2(np.array(["a"] * 5), np.array(["a"] * 9)) == (0.0, 1.0)


def test_chi2_drops_missing_values() -> None:
    ref = np.array(["a", "b", None, "a", np.nan], dtype=object)
    cur = np.array(["a", "b", "b", None], dtype=object)
    assert st.chi2(ref, cur) == st.chi2(np.array(["a", "b", "a"]), np.array(["a", "b", "b"]))


# --- Z-test --------------------------------------------------------------------------


def test_z_hand_example() -> None:
    # p1 = 0.5 (n1 = 100), p2 = 0.8 (n2 = 100), pooled P = 0.65:
    # z = 0.3 / sqrt(0.65 * 0.35 * (1/100 + 1/100)) = 0.3 / 0.0674537 = 4.447496
    ref = np.array(["x"] * 50 + ["y"] * 50)
    cur = np.array(["x"] * 80 + ["y"] * 20)
    z, p = st.z_proportions(ref, cur)
    assert z == pytest.approx(0.3 / math.sqrt(0.65 * 0.35 * 0.02), rel=REL)
    assert z == pytest.approx(4.447496, abs=1e-6)
    assert p is not None and p == pytest.approx(2 * (1 - stats.norm.cdf(z)), rel=1e-9)


def test_z_squared_equals_scipy_2x2_chi2_without_correction() -> None:
    ref = rng(7).random(900) < 0.30
    cur = rng(8).random(700) < 0.36
    table = [[ref.sum(), (~ref).sum()], [cur.sum(), (~cur).sum()]]
    expected = stats.chi2_contingency(table, correction=False)
    z, p = st.z_proportions(ref, cur)
    assert close(z**2, float(expected.statistic))
    assert p is not None and close(p, float(expected.pvalue))


def test_z_single_shared_category_and_non_binary() -> None:
    assert st.z_proportions(np.array([1, 1]), np.array([1])) == (0.0, 1.0)
    with pytest.raises(BadInput, match="binary"):
        st.z_proportions(np.array(["a", "b", "c"]), np.array(["a"]))


# --- Wasserstein ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m"),
    [(1, 1), (1, 7), (7, 3), (5, 5), (6, 4), (4, 6), (3, 9), (999, 1001), (20_000, 30_000)],
)
def test_wasserstein_equals_scipy_over_std(n: int, m: int) -> None:
    ref = rng(n).normal(2.0, 3.0, size=n)
    cur = rng(m + 1).exponential(2.0, size=m)
    std = np.std(ref)
    expected = stats.wasserstein_distance(ref, cur) / (std if std > 0 else st.STD_FLOOR)
    assert close(st.wasserstein_norm(ref, cur)[0], float(expected))


def test_wasserstein_with_ties_equals_scipy() -> None:
    ref = rng(9).integers(0, 8, size=1_200).astype(float)
    cur = rng(10).integers(2, 10, size=1_500).astype(float)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    stat, p = st.wasserstein_norm(ref, cur)
    assert close(stat, float(expected))
    assert p is None


def test_wasserstein_constant_reference_uses_floor() -> None:
    stat, _ = st.wasserstein_norm(np.full(10, 3.0), np.full(10, 3.5))
    assert close(stat, 0.5 / st.STD_FLOOR)


# --- binning, PSI, Jensen-Shannon, Hellinger -----------------------------------------


def test_binned_counts_numeric_uses_reference_deciles() -> None:
    ref = np.arange(1000.0)  # deciles at 99.9, 199.8, ...: 100 values per bin
    cur = np.array([-50.0, 0.0, 99.9, 500.0, 5000.0])
    rc, cc = st.binned_counts(ref, cur, "numeric")
    assert rc.tolist() == [100] * 10
    # [-inf, 99.9) holds -50 and 0; 99.9 starts bin 2; 5000 falls in the open last bin.
    assert cc.tolist() == [2, 1, 0, 0, 0, 1, 0, 0, 0, 1]


def test_binned_counts_ties_merge_bins() -> None:
    ref = np.array([0.0] * 70 + list(range(1, 31)))
    rc, _ = st.binned_counts(ref, ref, "numeric")
    assert rc.sum() == 100
    assert len(rc) < 10


def test_psi_categorical_hand_example() -> None:
    # p = (0.5, 0.3, 0.2), q = (0.4, 0.4, 0.2):
    # PSI = (0.4-0.5)ln(0.4/0.5) + (0.4-0.3)ln(0.4/0.3) + 0 = 0.0223144 + 0.0287682 = 0.0510826
    ref = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2)
    cur = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 2)
    hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    stat, p = st.psi(ref, cur, "categorical")
    assert close(stat, hand)
    assert stat == pytest.approx(0.0510826, abs=1e-7)
    assert p is None


def test_psi_empty_bin_uses_epsilon() -> None:
    # p = (0.5, 0.5, 0 -> 1e-4), q = (0.25, 0.25, 0.5)
    ref = np.array(["a", "a", "b", "b"])
    cur = np.array(["a", "b", "c", "c"])
    hand = 2 * (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert close(st.psi(ref, cur, "categorical")[0], hand)


def test_psi_empty_current_bin_uses_epsilon_too() -> None:
    # The mirror case: p = (0.25, 0.25, 0.5), q = (0.5, 0.5, 0 -> 1e-4). Without the
    # epsilon on the current side, ln(0 / 0.5) makes the statistic infinite.
    ref = np.array(["a", "b", "c", "c"])
    cur = np.array(["a", "a", "b", "b"])
    hand = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    stat = st.psi(ref, cur, "categorical")[0]
    assert math.isfinite(stat)
    assert close(stat, hand)


def test_psi_numeric_hand_example() -> None:
    # bins=2 on 0..9: one edge at 4.5, p = (0.5, 0.5); current [0, 1, 2, 7]: q = (0.75, 0.25)
    hand = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    stat, _ = st.psi(np.arange(10.0), np.array([0.0, 1.0, 2.0, 7.0]), "numeric", bins=2)
    assert close(stat, hand)
    assert stat == pytest.approx(0.2746531, abs=1e-7)


def test_psi_numeric_equals_formula_on_histogram() -> None:
    ref = rng(11).normal(size=5_000)
    cur = rng(12).normal(0.2, 1.1, size=4_000)
    p, q = decile_proportions(ref, cur)
    p, q = np.where(p == 0, 1e-4, p), np.where(q == 0, 1e-4, q)
    assert close(st.psi(ref, cur, "numeric")[0], float(np.sum((q - p) * np.log(q / p))))


def test_jensenshannon_categorical_equals_scipy() -> None:
    ref = categories(13, 3_000, [6, 3, 1, 0.5])
    cur = categories(14, 2_000, [5, 3, 2, 0.1, 0.4])
    r, c = counts_by_hand(list(ref), list(cur))
    expected = distance.jensenshannon(r / r.sum(), c / c.sum())
    assert close(st.jensenshannon(ref, cur, "categorical")[0], float(expected))


def test_jensenshannon_numeric_equals_scipy_on_shared_bins() -> None:
    ref = rng(15).gamma(2.0, 3.0, size=8_000)
    cur = rng(16).gamma(2.2, 3.0, size=9_000)
    p, q = decile_proportions(ref, cur)
    expected = distance.jensenshannon(p, q)
    assert close(st.jensenshannon(ref, cur, "numeric")[0], float(expected))


def test_hellinger_hand_example() -> None:
    # p = (0.5, 0.3, 0.2), q = (0.4, 0.4, 0.2):
    # H = sqrt(((sqrt .5 - sqrt .4)^2 + (sqrt .3 - sqrt .4)^2) / 2)
    #   = sqrt(0.0127525 / 2) = 0.0798514
    ref = np.array(["a"] * 5 + ["b"] * 3 + ["c"] * 2)
    cur = np.array(["a"] * 4 + ["b"] * 4 + ["c"] * 2)
    hand = math.sqrt(
        ((math.sqrt(0.5) - math.sqrt(0.4)) ** 2 + (math.sqrt(0.3) - math.sqrt(0.4)) ** 2) / 2
    )
    stat, p = st.hellinger(ref, cur, "categorical")
    assert close(stat, hand)
    assert stat == pytest.approx(0.0798514, abs=1e-7)
    # Evidently's form sqrt(1 - sum sqrt(p q)) is the same number.
    bc = math.sqrt(0.5 * 0.4) + math.sqrt(0.3 * 0.4) + 0.2
    assert stat == pytest.approx(math.sqrt(1 - bc), rel=1e-9)
    assert p is None


def test_hellinger_bounds() -> None:
    assert st.hellinger(np.array(["a"]), np.array(["b"]), "categorical")[0] == pytest.approx(1.0)
    same = rng(17).normal(size=500)
    assert st.hellinger(same, same, "numeric")[0] == 0.0


# --- inputs --------------------------------------------------------------------------


def test_category_counts_aligns_union_and_fast_path() -> None:
    rc, cc = st.category_counts(np.array(["a", "b", "a"]), np.array(["b", "c"]))
    assert rc.tolist() == [2, 1, 0] and cc.tolist() == [0, 1, 1]
    rc, cc = st.category_counts(np.array([0, 0, 3]), np.array([3, 5]))
    assert rc.tolist() == [2, 1, 0] and cc.tolist() == [0, 1, 1]
    rc, cc = st.category_counts(np.array([1, 2]), np.array([1.0, True]))
    assert rc.tolist() == [1, 1] and cc.tolist() == [2, 0]


def test_empty_sample_is_bad_input() -> None:
    with pytest.raises(BadInput, match="current sample is empty"):
        st.ks(np.arange(5.0), np.array([np.nan]))
    with pytest.raises(BadInput, match="reference sample is empty"):
        st.chi2(np.array([None], dtype=object), np.array(["a"]))


def test_unknown_kind_and_text_to_numeric_test() -> None:
    with pytest.raises(BadInput, match="unknown column kind 'ordinal'"):
        st.psi(np.arange(3.0), np.arange(3.0), "ordinal")  # type: ignore[arg-type]
    with pytest.raises(BadInput, match="not numeric"):
        st.wasserstein_norm(np.array(["a", "b"]), np.array(["a"]))
