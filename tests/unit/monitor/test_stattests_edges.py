"""The drift tests at their edges: the error each bad input gets (naming the test and the
side), missing values of every dtype, mixed category types, and values on a bin edge."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from mlcycle.errors import BadInput
from mlcycle.monitor import stattests as st

NUMERIC: list[tuple[str, Callable[[np.ndarray, np.ndarray], object]]] = [
    ("ks", st.ks),
    ("wasserstein", st.wasserstein_norm),
    ("binning", lambda r, c: st.binned_counts(r, c, "numeric")),
]
CATEGORICAL: list[tuple[str, Callable[[np.ndarray, np.ndarray], object]]] = [
    ("chi2", st.chi2),
    ("z", st.z_proportions),
    ("category_counts", st.category_counts),
]


@pytest.mark.parametrize(("test", "func"), NUMERIC)
def test_numeric_tests_name_themselves_and_the_empty_side(
    test: str, func: Callable[[np.ndarray, np.ndarray], object]
) -> None:
    values = np.array([1.0, 2.0, 3.0])
    nothing = np.array([np.nan, np.inf, -np.inf])
    for side, args in (("reference", (nothing, values)), ("current", (values, nothing))):
        with pytest.raises(BadInput) as caught:
            func(*args)
        assert caught.value.what == f"{test}: the {side} sample is empty"
        assert caught.value.why == "no values are left after dropping NaN and ±inf"
        assert caught.value.fix == "test a column that has values in both samples"


@pytest.mark.parametrize(("test", "func"), NUMERIC)
def test_numeric_tests_refuse_a_table_and_text(
    test: str, func: Callable[[np.ndarray, np.ndarray], object]
) -> None:
    values = np.array([1.0, 2.0, 3.0])
    with pytest.raises(BadInput) as table:
        func(values, np.zeros((2, 2)))
    assert table.value.what == f"{test}: the current sample is not 1-D (shape (2, 2))"
    assert table.value.why == "drift tests compare two samples of one column"
    assert table.value.fix == "pass one column's values, e.g. df['col'].to_numpy()"
    with pytest.raises(BadInput) as text:
        func(np.array(["a", "b"]), values)
    assert text.value.what == f"{test}: the reference sample is not numeric (<U1)"
    assert text.value.why == f"{test} compares numbers"
    assert text.value.fix == (
        "use a categorical test (chi2, z, js, psi, hellinger with kind='categorical')"
    )


@pytest.mark.parametrize(("test", "func"), CATEGORICAL)
def test_categorical_tests_name_themselves_and_the_empty_side(
    test: str, func: Callable[[np.ndarray, np.ndarray], object]
) -> None:
    values = np.array(["a", "b"], dtype=object)
    nothing = np.array([None, np.nan], dtype=object)
    for side, args in (("reference", (nothing, values)), ("current", (values, nothing))):
        with pytest.raises(BadInput) as caught:
            func(*args)
        assert caught.value.what == f"{test}: the {side} sample is empty"
        assert caught.value.why == "no values are left after dropping missing values"
        assert caught.value.fix == "test a column that has values in both samples"
    with pytest.raises(BadInput) as table:
        func(np.array([["a"], ["b"]]), values)
    assert table.value.what == f"{test}: the reference sample is not 1-D (shape (2, 1))"
    assert table.value.why == "drift tests compare two samples of one column"
    assert table.value.fix == "pass one column's values, e.g. df['col'].to_numpy()"


def test_missing_values_of_every_dtype_are_dropped_before_counting() -> None:
    floats = np.array([1.0, np.nan, 2.0, 1.0])
    ref, cur = st.category_counts(floats, np.array([2.0, np.nan]))
    assert sorted(zip(ref.tolist(), cur.tolist(), strict=True)) == [(1, 1), (2, 0)]
    objects = np.array(["a", None, "b", np.nan], dtype=object)
    ref, cur = st.category_counts(objects, np.array(["a"], dtype=object))
    assert sorted(zip(ref.tolist(), cur.tolist(), strict=True)) == [(1, 0), (1, 1)]
    dates = np.array(["2024-01-01", "NaT", "2024-01-01"], dtype="datetime64[D]")
    ref, cur = st.category_counts(dates, dates[:1])
    assert (ref.tolist(), cur.tolist()) == ([2], [1])


def test_numbers_and_text_are_different_categories() -> None:
    # 1 in the reference and "1" in the current are not the same category.
    ref, cur = st.category_counts(np.array([1, 2, 2]), np.array(["1", "2"]))
    assert ref.sum() == 3 and cur.sum() == 2 and ref.size == 4
    assert all(r == 0 or c == 0 for r, c in zip(ref, cur, strict=True))
    ref, cur = st.category_counts(np.array(["a", "b"]), np.array([1, 1]))
    assert ref.size == 3 and cur.tolist().count(2) == 1
    ref, cur = st.category_counts(np.array(["1", "2"]), np.array([1, 1]))
    assert ref.size == 3 and cur.tolist().count(2) == 1
    # Negative integer codes are counted like any other value.
    ref, cur = st.category_counts(np.array([-1, 0, 0]), np.array([-1, -1, 5]))
    assert sorted(zip(ref.tolist(), cur.tolist(), strict=True)) == [(0, 1), (1, 2), (2, 0)]


def test_chi2_tests_two_categories_like_scipy() -> None:
    ref = np.array(["a"] * 60 + ["b"] * 40)
    cur = np.array(["a"] * 30 + ["b"] * 70)
    stat, p = st.chi2(ref, cur)
    expected = stats.chisquare([30, 70], [60.0, 40.0])
    assert stat == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)


def test_z_test_refuses_more_than_two_categories_with_a_way_out() -> None:
    with pytest.raises(BadInput) as caught:
        st.z_proportions(np.array(list("abc")), np.array(list("ab")))
    assert caught.value.what == "the Z-test needs a binary column, this one has 3 categories"
    assert caught.value.why == "it compares the share of one of two categories"
    assert caught.value.fix == "use chi2 (small samples) or js (large samples) instead"


def test_reference_edges_and_the_bins_they_make() -> None:
    assert st.reference_edges(np.arange(10.0), bins=2).tolist() == [4.5]
    assert st.reference_edges(np.arange(10.0)).size == 9  # deciles by default
    with pytest.raises(BadInput) as caught:
        st.reference_edges(np.array([np.nan]))
    assert caught.value.what == "binning: the reference sample is empty"
    with pytest.raises(BadInput) as one_bin:
        st.reference_edges(np.arange(10.0), bins=1)
    assert one_bin.value.what == "bins must be at least 2, got 1"
    assert one_bin.value.why == "one bin holds everything and shows no drift"
    assert one_bin.value.fix == "use the default of 10"


def test_a_value_on_an_edge_belongs_to_the_bin_that_starts_there() -> None:
    # Reference [0, 1, 2] with 2 bins: the edge is the median, 1.0.
    ref, cur = st.binned_counts(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0]), "numeric", bins=2)
    assert (ref.tolist(), cur.tolist()) == ([1, 2], [0, 2])
    # A current sample that never reaches the upper bins still has a count (0) for each.
    ref, cur = st.binned_counts(np.arange(10.0), np.array([0.0]), "numeric", bins=5)
    assert (ref.tolist(), cur.tolist()) == ([2, 2, 2, 2, 2], [1, 0, 0, 0, 0])


def test_an_unknown_kind_is_refused_with_the_known_ones() -> None:
    with pytest.raises(BadInput) as caught:
        st.psi(np.arange(5.0), np.arange(5.0), "text")
    assert caught.value.what == "unknown column kind 'text'"
    assert caught.value.why == (
        "binned drift measures bin numbers by quantiles and categories by value"
    )
    assert caught.value.fix == "use one of: numeric, categorical"


def test_samples_too_large_for_the_exact_grid_fall_back_to_scipy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=300), rng.normal(0.5, 1.0, size=200)
    fast = st.wasserstein_norm(ref, cur)[0]
    monkeypatch.setattr(st, "_EXACT_GRID", 1000)  # 300 * 200 rows is now "too large"
    slow = st.wasserstein_norm(ref, cur)[0]
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert slow == pytest.approx(expected, rel=1e-12) and fast == pytest.approx(expected, rel=1e-12)
