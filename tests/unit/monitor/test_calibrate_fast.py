"""The vectorized calibration computes the same statistics the tests give, draw by draw."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle.monitor import stattests as st
from mlcycle.monitor.calibrate import (
    NullModel,
    _binned_rows,
    _sorted_draws,
    calibrated,
    fingerprint,
    null_statistics,
)


def test_sorted_draws_are_sorted_values_of_the_reference() -> None:
    ordered = np.sort(np.random.default_rng(0).normal(size=1000))
    draws = _sorted_draws(np.random.default_rng(1), ordered, 64, 20)
    assert draws.shape == (20, 64)
    assert (np.diff(draws, axis=1) >= 0).all()
    assert np.isin(draws, ordered).all()


@pytest.mark.parametrize("chunk", [8, 100, 2500])
def test_vectorized_wasserstein_equals_the_test_on_each_draw(chunk: int) -> None:
    values = np.random.default_rng(0).gamma(2.0, 3.0, size=20_000).round(1)  # ties on purpose
    other = chunk * (5000 // chunk)
    got = null_statistics(
        values, "wasserstein", "numeric", chunk, other, 30, np.random.default_rng(7)
    )
    # The same draws, replayed and measured one by one with the real test's W1.
    rng = np.random.default_rng(7)
    ordered = np.sort(values)
    a = _sorted_draws(rng, ordered, chunk, 30)
    b = _sorted_draws(rng, ordered, other, 30)
    want = [st._wasserstein1(a[i], b[i]) / np.std(values) for i in range(30)]
    assert got == pytest.approx(want, rel=1e-10, abs=1e-14)


@pytest.mark.parametrize("test", ["psi", "js", "hellinger"])
def test_vectorized_binned_distances_equal_the_tests(test: str) -> None:
    rng = np.random.default_rng(3)
    p = rng.multinomial(500, [0.5, 0.3, 0.15, 0.05], size=10)
    q = rng.multinomial(2000, [0.4, 0.3, 0.2, 0.1], size=10)
    got = _binned_rows(test, p / 500, q / 2000)
    func = {"psi": st.psi, "js": st.jensenshannon, "hellinger": st.hellinger}[test]
    want = []
    for row_p, row_q in zip(p, q, strict=True):
        # Samples with these counts over categories 0..3 (every category on both sides).
        ref = np.repeat(np.arange(4), row_p)
        cur = np.repeat(np.arange(4), row_q)
        want.append(func(ref, cur, "categorical")[0])
    assert got == pytest.approx(want, rel=1e-10, abs=1e-14)


def test_binned_null_statistics_shrink_with_sample_size() -> None:
    values = np.random.default_rng(0).choice(np.arange(8), size=50_000)
    small = null_statistics(values, "js", "categorical", 32, 4992, 200, np.random.default_rng(1))
    large = null_statistics(values, "js", "categorical", 4096, 4096, 200, np.random.default_rng(1))
    assert np.quantile(small, 0.99) > 3 * np.quantile(large, 0.99) > 0


def test_calibrations_are_memoized_by_content() -> None:
    values = np.random.default_rng(5).normal(size=8000)
    first = calibrated(values, "wasserstein", "numeric", 512)
    assert calibrated(values.copy(), "wasserstein", "numeric", 512) is first
    assert calibrated(values + 1e-9, "wasserstein", "numeric", 512) is not first
    assert first == NullModel.fit(values, "wasserstein", "numeric", window=512)
    assert fingerprint(np.array(["a", "b"], dtype=object)) != fingerprint(
        np.array(["b", "a"], dtype=object)
    )


def test_more_draws_only_where_the_noise_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Big windows are judged by the floor: 200 draws settle that. A small window's
    threshold is the noise itself, so its 99th percentile gets 1,000 draws."""
    from mlcycle.monitor import calibrate

    drawn: list[int] = []
    real = calibrate.null_statistics

    def counting(*args: object) -> np.ndarray:
        drawn.append(int(args[5]))  # type: ignore[call-overload]
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(calibrate, "null_statistics", counting)
    values = np.random.default_rng(0).normal(size=50_000)
    big = NullModel.fit(values, "wasserstein", "numeric", window=4096)
    assert drawn == [calibrate.RESAMPLES] and big.threshold(50_000, 100_000) == big.floor
    drawn.clear()
    small = NullModel.fit(values, "wasserstein", "numeric", window=64)
    assert drawn == [calibrate.RESAMPLES, calibrate.PRECISE_RESAMPLES - calibrate.RESAMPLES]
    assert small.threshold(50_000, 64) > small.floor
