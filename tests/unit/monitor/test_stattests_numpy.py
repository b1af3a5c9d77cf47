"""The hand-written NumPy statistics against the SciPy functions they replace.

:mod:`mlcycle.monitor.stattests` computes Wasserstein-1 (both its grid path and
its merge path, after ``scipy.stats._stats_py._cdf_distance``), ``rel_entr`` and
the Jensen-Shannon distance without importing SciPy, so that a drift report on
large samples never pays for ``import scipy.stats``. These tests hold them equal
to SciPy to 1e-12 on random data, ties and the edge cases. No weights: the drift
tests never weight values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance
from scipy.special import rel_entr as scipy_rel_entr

from mlcycle.monitor import stattests as st

REL = 1e-12


def samples() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Pairs of 1-D samples: sizes from 1, ties, shared values, constants, signs, scales."""
    rng = np.random.default_rng(7)
    return [
        ("normal", rng.normal(size=997), rng.normal(0.3, 1.2, size=1_503)),
        ("same size", rng.normal(size=400), rng.normal(size=400)),
        ("one each", np.array([1.5]), np.array([-2.0])),
        ("one vs many", np.array([0.0]), rng.normal(size=50)),
        ("many vs one", rng.exponential(size=64), np.array([3.0])),
        ("identical", np.arange(10.0), np.arange(10.0)),
        ("ties", rng.integers(0, 5, size=333).astype(float), rng.integers(1, 7, size=222) * 1.0),
        ("shared points", np.repeat([1.0, 2.0, 3.0], 7), np.repeat([2.0, 3.0, 4.0], 5)),
        ("constant ref", np.full(100, 4.0), rng.normal(4.0, size=80)),
        ("both constant", np.full(30, 1.0), np.full(20, 2.5)),
        ("heavy tail", rng.standard_cauchy(size=500), rng.standard_cauchy(size=300)),
        ("large scale", rng.normal(1e9, 1e6, size=300), rng.normal(1e9, 2e6, size=301)),
        ("tiny scale", rng.normal(0.0, 1e-9, size=128), rng.normal(1e-9, 1e-9, size=96)),
        ("coprime sizes", rng.random(97), rng.random(89)),
    ]


CASES = samples()


@pytest.mark.parametrize(("name", "u", "v"), CASES, ids=[c[0] for c in CASES])
def test_wasserstein_grid_path_equals_scipy(name: str, u: np.ndarray, v: np.ndarray) -> None:
    want = float(stats.wasserstein_distance(u, v))
    assert st._wasserstein1(u, v) == pytest.approx(want, rel=REL, abs=1e-300)
    assert st._wasserstein1(v, u) == pytest.approx(want, rel=REL, abs=1e-300)


@pytest.mark.parametrize(("name", "u", "v"), CASES, ids=[c[0] for c in CASES])
def test_wasserstein_merge_path_equals_scipy(name: str, u: np.ndarray, v: np.ndarray) -> None:
    want = float(stats.wasserstein_distance(u, v))
    got = st._cdf_wasserstein1(np.sort(u), np.sort(v))
    assert got == pytest.approx(want, rel=REL, abs=1e-300)


def test_huge_samples_take_the_merge_path_with_the_same_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(size=800), rng.integers(-2, 3, size=600).astype(float)
    want = float(stats.wasserstein_distance(ref, cur) / np.std(ref))
    grid = st.wasserstein_norm(ref, cur)
    monkeypatch.setattr(st, "_EXACT_GRID", 1)  # as if n·m were beyond float64's exact integers
    merged = st.wasserstein_norm(ref, cur)
    assert grid[0] == pytest.approx(want, rel=REL) and merged[0] == pytest.approx(want, rel=REL)
    assert grid[1] is None and merged[1] is None


def test_rel_entr_equals_scipy_on_every_case() -> None:
    rng = np.random.default_rng(11)
    scales = np.array([0.0, 1e-310, 1e-300, 1e-8, 0.3, 1.0, 7.0, 1e300])
    x = np.concatenate([rng.random(20_000) * rng.choice(scales, 20_000), scales])
    y = np.concatenate([rng.random(20_000) * rng.choice(scales, 20_000), scales[::-1]])
    # The cases by hand: 0·log(0/y) = 0 for y >= 0; negative or x > 0 = y gives inf; NaN stays.
    specials = [(0.0, 0.0), (0.0, 2.0), (0.0, -1.0), (-1.0, 2.0), (1.0, 0.0), (1.0, -1.0),
                (math.nan, 1.0), (1.0, math.nan), (math.inf, 1.0), (1.0, math.inf),
                (1.0, 1.0), (1.0, 0.5), (1.0, 2.0), (0.5000001, 1.0), (1.9999999, 1.0),
                (1e-300, 1e300), (1e300, 1e-300)]  # fmt: skip
    x = np.concatenate([x, [a for a, _ in specials]])
    y = np.concatenate([y, [b for _, b in specials]])
    want = scipy_rel_entr(x, y)
    got = st.rel_entr(x, y)
    np.testing.assert_allclose(got, want, rtol=REL, atol=0.0)  # NaN where SciPy has NaN
    one_by_one = np.array(
        [st._rel_entr1(a, b) for a, b in zip(x.tolist(), y.tolist(), strict=True)]
    )
    np.testing.assert_allclose(one_by_one, want, rtol=REL, atol=0.0)
    assert st.rel_entr(np.ones((2, 3)), [0.5, 1.0, 2.0]).shape == (2, 3)  # broadcasts


def test_js_distance_equals_scipy_on_random_weights() -> None:
    rng = np.random.default_rng(5)
    for size in (1, 2, 3, 10, 57, 400):
        for _ in range(25):
            p = rng.random(size) * (rng.random(size) < 0.8)  # empty bins on either side
            q = rng.random(size) * (rng.random(size) < 0.8)
            if p.sum() == 0 or q.sum() == 0:
                continue
            want = float(distance.jensenshannon(p, q))
            assert st.js_distance(p, q) == pytest.approx(want, rel=REL, abs=1e-15)


def test_js_distance_at_its_bounds() -> None:
    assert st.js_distance([3, 1], [3, 1]) == 0.0
    assert st.js_distance([2.0, 2.0], [0.5, 0.5]) == 0.0  # weights are normalised first
    assert st.js_distance([1, 0], [0, 1]) == pytest.approx(math.sqrt(math.log(2)), rel=REL)
    counts = np.array([5, 0, 3]), np.array([0, 4, 4])
    want = float(distance.jensenshannon(*counts))
    assert st.js_distance(*counts) == pytest.approx(want, rel=REL)
