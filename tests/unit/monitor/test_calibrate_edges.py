"""The calibrated noise threshold at its edges: the fast null statistics against draw-by-draw
ones, constant and tiny references, the size buckets, and the noise formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from mlcycle.monitor import calibrate as cal
from mlcycle.monitor import stattests as st
from mlcycle.monitor.calibrate import (
    FLOORS,
    MAX_CHUNK,
    NullModel,
    calibrated,
    fingerprint,
    null_statistics,
)


def _draw_by_draw(values: np.ndarray, test: str, kind: str, a: int, b: int, n: int) -> np.ndarray:
    """The statistic between two samples drawn with replacement, one draw at a time, binned
    on the whole reference (as the fast path does)."""
    rng = np.random.default_rng(99)
    out = np.empty(n)
    for i in range(n):
        x = values[rng.integers(0, values.size, a)]
        y = values[rng.integers(0, values.size, b)]
        if test == "wasserstein":
            out[i] = stats.wasserstein_distance(x, y) / np.std(values)
            continue
        if kind == "numeric":
            edges = st.reference_edges(values)
            pc = np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)
            qc = np.bincount(np.searchsorted(edges, y, side="right"), minlength=edges.size + 1)
        else:
            cats = np.unique(values)
            pc = np.array([np.sum(x == c) for c in cats])
            qc = np.array([np.sum(y == c) for c in cats])
        p, q = pc / a, qc / b
        if test == "psi":
            p, q = np.where(p == 0, st.EPSILON, p), np.where(q == 0, st.EPSILON, q)
            out[i] = np.sum((q - p) * np.log(q / p))
        elif test == "js":
            out[i] = float(distance.jensenshannon(p, q))
        else:
            out[i] = np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2)
    return out


@pytest.mark.parametrize(
    ("test", "kind"),
    [
        ("psi", "numeric"),
        ("js", "numeric"),
        ("hellinger", "numeric"),
        ("psi", "categorical"),
        ("hellinger", "categorical"),
        ("wasserstein", "numeric"),
    ],
)
def test_fast_null_statistics_have_the_draw_by_draw_distribution(test: str, kind: str) -> None:
    rng = np.random.default_rng(1)
    if kind == "numeric":
        values = rng.gamma(2.0, 3.0, size=20_000)
    else:
        # a rare category is often absent from a 64-row draw: its empty bin must be floored
        values = rng.choice(np.array(list("abcde")), size=20_000, p=[0.5, 0.3, 0.15, 0.04, 0.01])
    fast = null_statistics(values, test, kind, 64, 256, 600, np.random.default_rng(2))
    slow = _draw_by_draw(values, test, kind, 64, 256, 600)
    assert fast.shape == (600,)
    for q in (0.5, 0.9):
        assert np.quantile(fast, q) == pytest.approx(np.quantile(slow, q), rel=0.12), q


def test_sizes_that_are_not_multiples_are_drawn_one_by_one_with_the_same_distribution() -> None:
    values = np.random.default_rng(3).normal(size=5000)
    # 70 is not a multiple of 30: the general path runs the real test per draw.
    general = null_statistics(
        values, "wasserstein", "numeric", 30, 70, 300, np.random.default_rng(4)
    )
    # ... that is, the real test on two draws (normed by the smaller draw's own std).
    rng = np.random.default_rng(5)
    slow = [
        st.wasserstein_norm(values[rng.integers(0, 5000, 30)], values[rng.integers(0, 5000, 70)])[0]
        for _ in range(300)
    ]
    assert general.shape == (300,) and np.all(general > 0)
    assert np.median(general) == pytest.approx(np.median(slow), rel=0.12)


def test_a_constant_reference_has_no_noise_not_nan() -> None:
    values = np.full(400, 3.0)
    null = null_statistics(values, "wasserstein", "numeric", 10, 50, 20, np.random.default_rng(0))
    assert null.tolist() == [0.0] * 20


def test_five_reference_rows_per_draw_are_enough_to_calibrate() -> None:
    values = np.random.default_rng(5).normal(size=10)
    calibrated = NullModel.fit(values, "wasserstein", "numeric")  # draws of 5 rows
    assert calibrated.test == "wasserstein" and calibrated.scale > 0
    tiny = NullModel.fit(values[:9], "wasserstein", "numeric")  # draws of 4: floor alone
    assert (tiny.test, tiny.scale, tiny.floor) == ("wasserstein", 0.0, FLOORS["wasserstein"])


def test_a_test_without_a_floor_is_decided_by_noise_alone() -> None:
    values = np.random.default_rng(6).normal(size=200)
    null = NullModel.fit(values, "ks", "numeric", resamples=50, precise=50)
    assert null.floor == 0.0 and null.scale > 0
    assert null.threshold(200, 100) == null.noise(200, 100)


def test_noise_shrinks_with_both_sample_sizes_and_psi_by_the_square() -> None:
    w = NullModel("wasserstein", scale=2.0, power=1.0, floor=0.1)
    assert w.noise(100, 400) == pytest.approx(2.0 * math.sqrt(1 / 100 + 1 / 400))
    assert w.threshold(100, 400) == pytest.approx(2.0 * math.sqrt(1 / 100 + 1 / 400))
    assert w.threshold(10**6, 10**6) == 0.1
    psi = NullModel("psi", scale=2.0, power=2.0, floor=0.1)
    assert psi.noise(100, 400) == pytest.approx(2.0 * (1 / 100 + 1 / 400))
    assert w.to_dict() == {"test": "wasserstein", "scale": 2.0, "power": 1.0, "floor": 0.1}


def test_window_size_buckets_are_powers_of_two_from_8_to_4096() -> None:
    assert [NullModel.bucket(n) for n in (1, 8, 15, 16, 100, 4096, 10**6)] == [
        8,
        8,
        8,
        16,
        64,
        4096,
        4096,
    ]
    assert 4096 <= MAX_CHUNK < 8192


def test_numeric_psi_noise_matches_the_chi_square_approximation() -> None:
    # Under no change, PSI over k bins is about chi2(k - 1) * (1/n_ref + 1/n_cur): the
    # 99th percentile of chi2(9) is 21.67, which is the scale the calibration finds.
    values = np.random.default_rng(7).normal(size=20_000)
    null = NullModel.fit(values, "psi", "numeric", window=256)
    assert null.scale == pytest.approx(stats.chi2.ppf(0.99, 9), rel=0.15)


def test_calibrations_are_memoized_by_content_and_the_oldest_goes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cal, "_MEMO", type(cal._MEMO)())
    monkeypatch.setattr(cal, "MEMO_SIZE", 2)
    rng = np.random.default_rng(8)
    first, second, third = (rng.normal(size=2000) for _ in range(3))
    got = calibrated(first, "wasserstein", "numeric", 64)
    assert got == NullModel.fit(first, "wasserstein", "numeric", window=64)
    assert calibrated(first.copy(), "wasserstein", "numeric", 64) is got  # same content
    calibrated(second, "wasserstein", "numeric", 64)
    kept = calibrated(third, "wasserstein", "numeric", 64)  # evicts `first`, the oldest
    assert calibrated(third, "wasserstein", "numeric", 64) is kept
    assert calibrated(first, "wasserstein", "numeric", 64) is not got


def test_text_is_fingerprinted_by_content_not_by_object_identity() -> None:
    a = np.array(["".join(["x", str(i)]) for i in range(50)], dtype=object)
    b = np.array(["".join(["x", str(i)]) for i in range(50)], dtype=object)
    assert a[3] is not b[3] and fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(a[::-1].copy())
