"""mlcycle's own drift decision: thresholds that do not depend on sample size.

At 160k rows a KS or χ² p-value is tiny for any column, and a fixed distance
threshold raises false alarms on small windows. mlcycle decides with two
parts instead:

* **An effect-size floor** (``FLOORS``): a distance below it is not a change
  worth acting on, however many rows show it. This is what a large window is
  judged by, so the decision stops depending on the window's size.
* **A noise threshold** calibrated by resampling the reference: the statistic
  between a random chunk of the reference of the window's size (rounded down
  to a power of two, at most 5,000 rows) and a disjoint chunk of the rest
  (both drawn from the same distribution, so any value is noise). Its 99th
  percentile over ``RESAMPLES`` draws, rescaled from the chunk sizes to the
  actual sample sizes by ``sqrt(1/n_ref + 1/n_cur)`` (the rate at which these
  distances shrink under no change; PSI, a divergence, by its square), is the
  value a window must beat.

A column drifts when its statistic is at least ``max(floor, noise)``. Tests
that give p-values (ks, chi2, z) are decided by Benjamini–Hochberg across the
columns of one report at level ``fdr`` instead (:func:`benjamini_hochberg`).

Example:
    >>> null = NullModel.fit(reference_values, "wasserstein", "numeric")
    >>> null.threshold(n_ref=50_000, n_cur=300)   # a small window must move more
    0.163
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlcycle.monitor import stattests as st
from mlcycle.monitor.stattests import Kind

#: Effect sizes below these never count as drift (Evidently's large-sample thresholds).
FLOORS: dict[str, float] = {
    "wasserstein": 0.1,
    "js": 0.1,
    "hellinger": 0.1,
    "psi": 0.1,
}
#: Number of reference chunk pairs drawn to calibrate one column.
RESAMPLES = 60
#: Largest chunk drawn from the reference while calibrating.
MAX_CHUNK = 5_000
#: The quantile of the null statistics a window must exceed.
QUANTILE = 0.99


@dataclass(frozen=True)
class NullModel:
    """The reference's own noise for one column and test, as a scale per unit of sqrt(1/n)."""

    test: str
    scale: float
    power: float
    floor: float

    @classmethod
    def fit(
        cls,
        values: np.ndarray,
        test: str,
        kind: Kind,
        *,
        window: int | None = None,
        resamples: int = RESAMPLES,
        seed: int = 0,
    ) -> NullModel:
        """Calibrate on one column's reference values (missing values already dropped).

        Example:
            >>> NullModel.fit(np.random.default_rng(0).normal(size=5000), "wasserstein",
            ...               "numeric").floor
            0.1
        """
        from mlcycle.monitor.drift import TESTS

        power = 2.0 if test == "psi" else 1.0
        floor = FLOORS.get(test, 0.0)
        n = int(values.size)
        # A chunk the size of the window (capped at half the reference) against a
        # disjoint chunk of the rest: the statistic a window of that size shows when
        # nothing changed. The other chunk is capped too, to keep calibration cheap;
        # rescaling by sqrt(1/a + 1/b) accounts for both sizes.
        chunk = min(window or MAX_CHUNK, MAX_CHUNK, n // 2)
        other = min(n - chunk, max(chunk, MAX_CHUNK))
        if chunk < 5:
            # Too little reference to say what noise looks like: the floor alone decides.
            return cls(test, 0.0, power, floor)
        rng = np.random.default_rng(seed)
        func = TESTS[test].func
        stats = np.empty(resamples)
        for b in range(resamples):
            idx = rng.choice(n, size=chunk + other, replace=False)
            stats[b] = func(values[idx[:chunk]], values[idx[chunk:]], kind)[0]
        q = float(np.quantile(stats, QUANTILE))
        return cls(test, q / (1.0 / chunk + 1.0 / other) ** (power / 2.0), power, floor)

    @staticmethod
    def bucket(n_cur: int) -> int:
        """The calibration size used for a window of ``n_cur`` rows (a power of two).

        Capped near ``MAX_CHUNK``: every larger window is calibrated at that size
        and rescaled, so one calibration serves them all.
        """
        return min(1 << max(3, int(n_cur).bit_length() - 1), 1 << (MAX_CHUNK.bit_length() - 1))

    def noise(self, n_ref: int, n_cur: int) -> float:
        """The statistic that noise alone reaches (99% of the time) at these sample sizes."""
        return self.scale * (1.0 / n_ref + 1.0 / n_cur) ** (self.power / 2.0)

    def threshold(self, n_ref: int, n_cur: int) -> float:
        """``max(floor, noise)``: what the statistic must reach to count as drift."""
        return max(self.floor, self.noise(n_ref, n_cur))


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (``None`` stays ``None``).

    A column drifts at false-discovery rate ``q`` when its adjusted p-value is
    below ``q``; across 12 features at q = 0.05 this keeps the expected share of
    false alarms among the flagged columns at 5%.

    Example:
        >>> benjamini_hochberg([0.01, 0.04, 0.03, None])
        [0.03, 0.04, 0.04, None]
    """
    idx = [i for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    out: list[float | None] = [None] * len(p_values)
    if not idx:
        return out
    p = np.array([p_values[i] for i in idx], dtype=np.float64)
    m = p.size
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.minimum(adjusted, 1.0)
    result = np.empty(m)
    result[order] = adjusted
    for k, i in enumerate(idx):
        out[i] = float(result[k])
    return out


__all__ = ["FLOORS", "NullModel", "benjamini_hochberg", "st"]
