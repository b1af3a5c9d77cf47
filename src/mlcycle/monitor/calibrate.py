"""mlcycle's own drift decision: thresholds that do not depend on sample size.

At 160k rows a KS or χ² p-value is tiny for any column, and a fixed distance
threshold raises false alarms on small windows. mlcycle decides with two
parts instead:

* **An effect-size floor** (``FLOORS``): a distance below it is not a change
  worth acting on, however many rows show it. This is what a large window is
  judged by, so the decision stops depending on the window's size.
* **A noise threshold** calibrated by resampling the reference: the statistic
  between two samples drawn from the reference — one of the window's size
  (rounded down to a power of two, at most ``MAX_CHUNK`` rows), one of the
  largest multiple of that size up to ``MAX_CHUNK`` rows — which, both coming
  from the same distribution, is pure noise. Its 99th percentile over
  ``RESAMPLES`` draws (``PRECISE_RESAMPLES`` when the noise, not the floor,
  decides), rescaled from the draw sizes to the actual sample sizes by
  ``sqrt(1/n_ref + 1/n_cur)`` (the rate at which these distances shrink under
  no change; PSI, a divergence, by its square), is the value a window must
  beat.

A column drifts when its statistic is at least ``max(floor, noise)``. Tests
that give p-values (ks, chi2, z) are decided by Benjamini–Hochberg across the
columns of one report at level ``fdr`` instead (:func:`benjamini_hochberg`).

How the resampling stays cheap (it runs once per reference, column and
window-size bucket, and the result is memoized by the reference's content —
:func:`calibrated` — and persisted next to the monitored model by
:class:`~mlcycle.monitor.engine.Monitor`):

* Draws are with replacement (a bootstrap of the reference's empirical
  distribution), all ``RESAMPLES`` at once as one matrix.
* Wasserstein: the reference is sorted once; a draw is sorted int32 indices
  into it, so its values come out sorted. The larger draw is a whole multiple
  ``k`` of the window-sized one, so W1 between two sorted draws is the mean
  gap between the j-th value of one and the (j // k)-th of the other — one
  array expression for all draws. It is normed by the whole reference's std,
  as the real test is.
* PSI, Jensen-Shannon, Hellinger: a draw's binned counts are multinomial over
  the reference's bins (deciles for numbers, categories otherwise), so draws
  are count matrices of a few columns, never rows.

Example:
    >>> null = NullModel.fit(reference_values, "wasserstein", "numeric")
    >>> null.threshold(n_ref=50_000, n_cur=300)   # a small window must move more
    0.163
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlcycle.monitor import stattests as st
from mlcycle.monitor.stattests import Kind

#: Effect sizes below these never count as drift (Evidently's large-sample thresholds).
FLOORS: dict[str, float] = {
    "wasserstein": 0.1,
    "js": 0.1,
    "hellinger": 0.1,
    "psi": 0.1,
}
#: Reference sample pairs drawn first to calibrate one column.
RESAMPLES = 200
#: Pairs drawn in all when the noise may matter (see :meth:`NullModel.fit`): a 99th
#: percentile from 200 draws varies by about ±8% between seeds, from 1,000 by ±3%.
PRECISE_RESAMPLES = 1000
#: The noise is settled by the first draws when it stays below this share of the floor.
SETTLED = 0.5
#: Largest sample drawn from the reference while calibrating.
MAX_CHUNK = 5_000
#: The quantile of the null statistics a window must exceed.
QUANTILE = 0.99
#: Calibrations kept in memory per process (see :func:`calibrated`).
MEMO_SIZE = 1024


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
        precise: int = PRECISE_RESAMPLES,
        seed: int = 0,
    ) -> NullModel:
        """Calibrate on one column's reference values (missing values already dropped).

        ``resamples`` pairs are drawn first. When the noise they show, at the
        smallest window of this size bucket, stays below ``SETTLED`` × the floor,
        the threshold is the floor whatever the exact noise (an error of 2× is
        far outside the estimate's spread), so that is enough — the case of big
        windows. Otherwise the noise decides, and draws continue to ``precise``
        pairs so the 99th percentile is stable.

        Example:
            >>> NullModel.fit(np.random.default_rng(0).normal(size=5000), "wasserstein",
            ...               "numeric").floor
            0.1
        """
        power = 2.0 if test == "psi" else 1.0
        floor = FLOORS.get(test, 0.0)
        n = int(values.size)
        # A sample the size of the window (capped at half the reference) against a
        # larger one: the statistic a window of that size shows when nothing
        # changed. Rescaling by sqrt(1/a + 1/b) accounts for both sizes.
        chunk = min(window or MAX_CHUNK, MAX_CHUNK, n // 2)
        # A whole multiple of the chunk (at most MAX_CHUNK rows, or the reference's
        # size) keeps the Wasserstein arithmetic a plain mean of gaps.
        other = chunk * max(1, min(MAX_CHUNK, n) // max(chunk, 1))
        if chunk < 5:
            # Too little reference to say what noise looks like: the floor alone decides.
            return cls(test, 0.0, power, floor)
        rng = np.random.default_rng(seed)
        stats = null_statistics(values, test, kind, chunk, other, resamples, rng)
        per_unit = (1.0 / chunk + 1.0 / other) ** (power / 2.0)
        scale = float(np.quantile(stats, QUANTILE)) / per_unit
        at_window = scale * (1.0 / n + 1.0 / chunk) ** (power / 2.0)
        if precise > resamples and at_window >= SETTLED * floor:
            more = null_statistics(values, test, kind, chunk, other, precise - resamples, rng)
            scale = float(np.quantile(np.concatenate([stats, more]), QUANTILE)) / per_unit
        return cls(test, scale, power, floor)

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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (the engine persists calibrations with the reference)."""
        return asdict(self)


# --- the null statistics, all draws at once ------------------------------------------


def null_statistics(
    values: np.ndarray,
    test: str,
    kind: Kind,
    chunk: int,
    other: int,
    resamples: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """``resamples`` values of ``test`` between a ``chunk``-row and an ``other``-row draw.

    Both draws come from ``values`` with replacement, so every value is what
    the test shows when nothing changed.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> null_statistics(rng.normal(size=10_000), "wasserstein", "numeric",
        ...                 100, 5000, 200, rng).shape
        (200,)
    """
    if test == "wasserstein" and other % chunk == 0:
        ordered = np.sort(np.asarray(values, dtype=np.float64))
        a = _sorted_draws(rng, ordered, chunk, resamples)
        b = _sorted_draws(rng, ordered, other, resamples)
        # With other = k·chunk the quantile function of `a` steps every k points
        # of `b`'s, so W1 is the mean gap between b's j-th value and a's (j // k)-th.
        k = other // chunk
        gaps = np.abs(b.reshape(resamples, chunk, k) - a[:, :, None])
        w1 = gaps.mean(axis=(1, 2))
        # The real test divides by the std of the whole reference, not of a draw.
        std = float(np.std(ordered))
        return np.asarray(w1 / (std if std > 0.0 else st.STD_FLOOR))
    if test in ("psi", "js", "hellinger"):
        if kind == "numeric":
            counts = st.binned_counts(values, values[:1], "numeric")[0]
        else:
            counts = st.category_counts(values, values[:1])[0]
        probs = counts / counts.sum()
        p = rng.multinomial(chunk, probs, size=resamples) / chunk
        q = rng.multinomial(other, probs, size=resamples) / other
        return _binned_rows(test, p, q)
    # p-value tests are decided by Benjamini-Hochberg, not calibrated; any other
    # test is run draw by draw.
    from mlcycle.monitor.choice import TESTS

    func = TESTS[test].func
    out = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, values.size, size=chunk + other)
        out[i] = func(values[idx[:chunk]], values[idx[chunk:]], kind)[0]
    return out


def _sorted_draws(
    rng: np.random.Generator, ordered: npt.NDArray[np.float64], size: int, rows: int
) -> npt.NDArray[np.float64]:
    """``rows`` draws of ``size`` values from sorted ``ordered`` (with replacement), each sorted.

    Sorting the drawn *indices* sorts the values (``ordered`` is sorted), and
    int32 indices sort about twice as fast as float64 values.
    """
    idx = rng.integers(0, ordered.size, size=(rows, size), dtype=np.int32)
    idx.sort(axis=1)
    return ordered[idx]


def _binned_rows(
    test: str, p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """PSI / Jensen-Shannon / Hellinger between matching rows of two proportion matrices."""
    if test == "psi":
        p = np.where(p == 0.0, st.EPSILON, p)
        q = np.where(q == 0.0, st.EPSILON, q)
        return np.asarray(np.sum((q - p) * np.log(q / p), axis=1))
    if test == "js":
        mid = (p + q) / 2.0
        js = (st.rel_entr(p, mid).sum(axis=1) + st.rel_entr(q, mid).sum(axis=1)) / 2.0
        return np.sqrt(np.maximum(js, 0.0))
    return np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2, axis=1) / 2.0)


# --- memo by content -----------------------------------------------------------------

_MEMO: OrderedDict[tuple[str, str, str, int], NullModel] = OrderedDict()


def fingerprint(values: np.ndarray) -> str:
    """A content hash of a column's reference values (dtype and order included).

    Example:
        >>> fingerprint(np.arange(3.0)) == fingerprint(np.arange(3.0))
        True
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        arr = pd.util.hash_array(arr)
    digest = hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=16)
    digest.update(arr.dtype.str.encode())
    return digest.hexdigest()


def calibrated(values: np.ndarray, test: str, kind: Kind, window: int) -> NullModel:
    """:meth:`NullModel.fit`, memoized in this process by the values' content.

    Repeated reports against one reference (every window of a replay, every
    call of a notebook loop) calibrate each column once.

    Example:
        >>> calibrated(ref_values, "wasserstein", "numeric", 4096) is calibrated(
        ...     ref_values, "wasserstein", "numeric", 4096)
        True
    """
    key = (fingerprint(values), test, kind, window)
    found = _MEMO.get(key)
    if found is not None:
        _MEMO.move_to_end(key)
        return found
    null = NullModel.fit(values, test, kind, window=window)
    _MEMO[key] = null
    while len(_MEMO) > MEMO_SIZE:
        _MEMO.popitem(last=False)
    return null


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


__all__ = [
    "FLOORS",
    "NullModel",
    "benjamini_hochberg",
    "calibrated",
    "fingerprint",
    "null_statistics",
    "st",
]
