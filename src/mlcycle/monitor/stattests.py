"""Two-sample drift tests: one function per test, vectorized with NumPy/SciPy.

Every function takes the reference and the current sample as 1-D arrays and
returns ``(statistic, p_value)``; ``p_value`` is ``None`` for the distance
measures (PSI, Wasserstein, Jensen-Shannon, Hellinger). Missing values are
dropped *inside* each function: NaN and ±inf for the numeric tests (as
Evidently does before testing a column), NaN/None for the categorical ones. A
side that is empty after that raises :class:`~mlcycle.errors.BadInput`.

How each statistic is built (the reference for anyone comparing numbers):

* ``ks`` — :func:`scipy.stats.ks_2samp` as is (method ``"auto"``).
* ``chi2`` — categories = union of both samples; observed = current counts;
  expected = reference proportion * current count; :func:`scipy.stats.chisquare`
  on those (Evidently's ``chisquare`` stattest). A category never seen in the
  reference has expected count 0, so the statistic is ``inf`` and p = 0, as in
  SciPy and Evidently. A single shared category gives (0.0, 1.0).
* ``z_proportions`` — pooled two-proportion Z-test on a binary column; the
  statistic is ``|z|`` (which of the two categories is "the" proportion is
  arbitrary, so the sign carries no meaning), p = 2·(1 - Φ(|z|)).
* ``psi``, ``jensenshannon``, ``hellinger`` — on binned proportions (see
  :func:`binned_counts`): numeric samples fall into 10 bins cut at the
  reference deciles (ties merge bins; the outer bins are open, so current values
  outside the reference range still count); categorical samples use one bin per
  category of the union. PSI = Σ (q - p)·ln(q / p) with empty-bin proportions
  replaced by ``EPSILON`` = 1e-4 (no renormalisation). Jensen-Shannon is
  :func:`scipy.spatial.distance.jensenshannon` with the natural logarithm
  (SciPy's and Evidently's default base; range [0, √ln 2 ≈ 0.833]), computed
  here with NumPy as SciPy does (:func:`js_distance`, :func:`rel_entr`).
  Hellinger = ‖√p - √q‖₂ / √2 (range [0, 1]).
* ``wasserstein_norm`` — Wasserstein-1 distance divided by the reference
  standard deviation (ddof 0); a constant reference is divided by 0.001,
  Evidently's floor. Equal to ``scipy.stats.wasserstein_distance(ref, cur) /
  np.std(ref)`` to ~1e-15, but computed here from the two sorted samples in
  O(n) after the sorts, about 8x faster than SciPy on 160k-row samples.

Only the small-sample p-value tests (``ks``, ``chi2``, ``z_proportions``) need
SciPy's distributions, and they import :mod:`scipy.stats` when they run: that
import costs about half a second, more than a whole ad-hoc drift report on
large samples (Wasserstein and Jensen-Shannon, NumPy only) takes.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> stat, p = ks(rng.normal(size=500), rng.normal(1.0, size=500))
    >>> p < 0.05
    True
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlcycle.errors import BadInput

Kind = Literal["numeric", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical")

#: Stand-in proportion for an empty bin in PSI (whose log term is undefined at 0).
EPSILON = 1e-4
#: Number of reference-quantile bins for numeric PSI / Jensen-Shannon / Hellinger.
N_BINS = 10
#: Divisor of the Wasserstein distance when the reference is constant (Evidently's floor).
STD_FLOOR = 1e-3

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# The fast Wasserstein path does grid arithmetic in float64; it is exact while
# n·m stays below 2**52.
_EXACT_GRID = 2**52
# Smallest normal float64: a ratio x/y below it has lost precision (rel_entr's far case).
_TINY = float(np.finfo(np.float64).tiny)


# --- cleaning and binning ------------------------------------------------------------


def _numeric(x: npt.ArrayLike, side: str, test: str) -> FloatArray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise BadInput(
            f"{test}: the {side} sample is not 1-D (shape {arr.shape})",
            "drift tests compare two samples of one column",
            "pass one column's values, e.g. df['col'].to_numpy()",
        )
    try:
        values = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise BadInput(
            f"{test}: the {side} sample is not numeric ({arr.dtype})",
            f"{test} compares numbers",
            "use a categorical test (chi2, z, js, psi, hellinger with kind='categorical')",
        ) from exc
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    if values.size == 0:
        raise BadInput(
            f"{test}: the {side} sample is empty",
            "no values are left after dropping NaN and ±inf",
            "test a column that has values in both samples",
        )
    return values


def _categorical(x: npt.ArrayLike, side: str, test: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise BadInput(
            f"{test}: the {side} sample is not 1-D (shape {arr.shape})",
            "drift tests compare two samples of one column",
            "pass one column's values, e.g. df['col'].to_numpy()",
        )
    if arr.dtype.kind in "fcOmM":  # the dtypes that can hold a missing value
        present = ~pd.isna(arr)
        if not present.all():
            arr = arr[present]
    if arr.size == 0:
        raise BadInput(
            f"{test}: the {side} sample is empty",
            "no values are left after dropping missing values",
            "test a column that has values in both samples",
        )
    return arr


def category_counts(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Counts per category over the union of both samples (missing values dropped).

    Both arrays are aligned: position ``i`` is the same category in each. Small
    non-negative integer codes are counted with ``np.bincount`` (the fast path
    :func:`~mlcycle.monitor.drift.drift_report` uses); anything else is
    factorized with pandas. Numbers compare by value across dtypes (1 == 1.0 ==
    True); text compares as text.

    Example:
        >>> category_counts(np.array(["a", "b", "a"]), np.array(["b", "c"]))
        (array([2, 1, 0]), array([0, 1, 1]))
    """
    return _counts(
        _categorical(ref, "reference", "category_counts"),
        _categorical(cur, "current", "category_counts"),
    )


def _counts(r: np.ndarray, c: np.ndarray) -> tuple[IntArray, IntArray]:
    if r.dtype.kind in "iub" and c.dtype.kind in "iub":
        low = min(int(r.min()), int(c.min()))
        high = max(int(r.max()), int(c.max()))
        # bincount allocates `high + 1` slots: only worth it for dense codes.
        if low >= 0 and high <= 4 * (r.size + c.size) + 1024:
            rc = np.bincount(r.astype(np.intp, copy=False), minlength=high + 1)
            cc = np.bincount(c.astype(np.intp, copy=False), minlength=high + 1)
            seen = (rc + cc) > 0
            return rc[seen].astype(np.int64), cc[seen].astype(np.int64)
    if r.dtype.kind in "iufb" and c.dtype.kind in "iufb":
        both = np.concatenate([r, c])  # numeric promotion keeps 1 and 1.0 one category
    else:
        both = np.concatenate([r.astype(object, copy=False), c.astype(object, copy=False)])
    codes, uniques = pd.factorize(both)
    k = len(uniques)
    rc = np.bincount(codes[: r.size], minlength=k)
    cc = np.bincount(codes[r.size :], minlength=k)
    return rc.astype(np.int64), cc.astype(np.int64)


def reference_edges(ref: npt.ArrayLike, bins: int = N_BINS) -> FloatArray:
    """Inner bin edges at the reference quantiles 1/bins, ..., (bins-1)/bins (deduplicated).

    With the two open outer bins this gives at most ``bins`` bins, each holding
    about 1/bins of the reference; repeated quantiles (a heavily tied
    reference) merge bins instead of leaving empty ones.

    Example:
        >>> reference_edges(np.arange(10.0), bins=2)
        array([4.5])
    """
    return _edges(_numeric(ref, "reference", "binning"), bins)


def _edges(r: FloatArray, bins: int) -> FloatArray:
    if bins < 2:
        raise BadInput(
            f"bins must be at least 2, got {bins}",
            "one bin holds everything and shows no drift",
            "use the default of 10",
        )
    qs = np.arange(1, bins, dtype=np.float64) / bins
    return np.unique(np.quantile(r, qs))


def binned_counts(
    ref: npt.ArrayLike, cur: npt.ArrayLike, kind: Kind, bins: int = N_BINS
) -> tuple[IntArray, IntArray]:
    """The counts PSI, Jensen-Shannon and Hellinger compare.

    ``kind="numeric"``: counts in the bins ``(-inf, e1), [e1, e2), ..., [ek, inf)``
    where ``e`` are :func:`reference_edges`. ``kind="categorical"``: counts per
    category of the union (:func:`category_counts`).

    Example:
        >>> binned_counts(np.arange(10.0), np.array([0.0, 9.0, 100.0]), "numeric", bins=2)
        (array([5, 5]), array([1, 2]))
    """
    _check_kind(kind)
    if kind == "categorical":
        return category_counts(ref, cur)
    r = _numeric(ref, "reference", "binning")
    c = _numeric(cur, "current", "binning")
    edges = _edges(r, bins)
    k = edges.size + 1
    # side="right": a value equal to an edge belongs to the bin that starts there.
    rc = np.bincount(np.searchsorted(edges, r, side="right"), minlength=k)
    cc = np.bincount(np.searchsorted(edges, c, side="right"), minlength=k)
    return rc.astype(np.int64), cc.astype(np.int64)


def _proportions(
    ref: npt.ArrayLike, cur: npt.ArrayLike, kind: Kind, bins: int
) -> tuple[FloatArray, FloatArray]:
    rc, cc = binned_counts(ref, cur, kind, bins)
    return rc / rc.sum(), cc / cc.sum()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise BadInput(
            f"unknown column kind '{kind}'",
            "binned drift measures bin numbers by quantiles and categories by value",
            f"use one of: {', '.join(KINDS)}",
        )


# --- p-value tests -------------------------------------------------------------------


def ks(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, float | None]:
    """Two-sample Kolmogorov-Smirnov test: ``scipy.stats.ks_2samp`` (D, p-value).

    Example:
        >>> d, p = ks(np.arange(100.0), np.arange(100.0) + 50)
        >>> round(d, 2)
        0.5
    """
    from scipy import stats  # here, not at the top: see the module's docstring

    r = _numeric(ref, "reference", "ks")
    c = _numeric(cur, "current", "ks")
    res = stats.ks_2samp(r, c)
    return float(res.statistic), float(res.pvalue)


def chi2(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, float | None]:
    """χ² goodness of fit of the current counts to the reference proportions.

    Over the union of categories, ``f_obs`` = current counts and ``f_exp`` =
    reference count * (current total / reference total), then
    ``scipy.stats.chisquare(f_obs, f_exp)``. A category absent from the
    reference gives ``(inf, 0.0)``.

    Example:
        >>> stat, p = chi2(np.array(list("aabbcc") * 50), np.array(list("aaaabc") * 50))
        >>> p < 0.05
        True
    """
    rc, cc = _counts(_categorical(ref, "reference", "chi2"), _categorical(cur, "current", "chi2"))
    if rc.size < 2:
        return 0.0, 1.0
    from scipy import stats  # here, not at the top: see the module's docstring

    f_exp = rc * (cc.sum() / rc.sum())
    with warnings.catch_warnings():
        # expected 0 for a new category: SciPy warns, then returns inf / p = 0.
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.chisquare(cc, f_exp)
    return float(res.statistic), float(res.pvalue)


def z_proportions(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, float | None]:
    """Two-proportion Z-test (pooled variance, two-sided) for a binary column.

    Returns ``(|z|, p)``. One shared category on both sides gives (0.0, 1.0);
    more than two categories raise :class:`BadInput` (use ``chi2``).

    Example:
        >>> z, p = z_proportions(np.array([0] * 50 + [1] * 50), np.array([0] * 80 + [1] * 20))
        >>> p < 0.05
        True
    """
    rc, cc = _counts(_categorical(ref, "reference", "z"), _categorical(cur, "current", "z"))
    if rc.size > 2:
        raise BadInput(
            f"the Z-test needs a binary column, this one has {rc.size} categories",
            "it compares the share of one of two categories",
            "use chi2 (small samples) or js (large samples) instead",
        )
    if rc.size < 2:
        return 0.0, 1.0
    from scipy import stats  # here, not at the top: see the module's docstring

    n1, n2 = float(rc.sum()), float(cc.sum())
    p1, p2 = rc[0] / n1, cc[0] / n2
    pooled = (rc[0] + cc[0]) / (n1 + n2)
    z = abs(p1 - p2) / np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(z), float(2.0 * stats.norm.sf(z))


# --- distances -----------------------------------------------------------------------


def psi(
    ref: npt.ArrayLike, cur: npt.ArrayLike, kind: Kind, *, bins: int = N_BINS
) -> tuple[float, float | None]:
    """Population Stability Index: Σ (q - p) · ln(q / p) over the bins.

    ``p``/``q`` are the reference/current proportions from :func:`binned_counts`;
    a proportion of 0 becomes ``EPSILON`` (1e-4) first. Common reading: < 0.1 no
    change, 0.1-0.25 moderate, > 0.25 major.

    Example:
        >>> round(psi(np.array(list("aab")), np.array(list("abb")), "categorical")[0], 4)
        0.4621
    """
    p, q = _proportions(ref, cur, kind, bins)
    p = np.where(p == 0.0, EPSILON, p)
    q = np.where(q == 0.0, EPSILON, q)
    return float(np.sum((q - p) * np.log(q / p))), None


def wasserstein_norm(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, float | None]:
    """Wasserstein-1 distance divided by the reference std (ddof 0; 0.001 if constant).

    Reads as "how many reference standard deviations the distribution moved".

    Example:
        >>> round(wasserstein_norm(np.array([0.0, 2.0]), np.array([1.0, 3.0]))[0], 6)
        1.0
    """
    r = _numeric(ref, "reference", "wasserstein")
    c = _numeric(cur, "current", "wasserstein")
    std = float(np.std(r))
    norm = std if std > 0.0 else STD_FLOOR
    return _wasserstein1(r, c) / norm, None


def _wasserstein1(r: FloatArray, c: FloatArray) -> float:
    """W1 = ∫₀¹ |Q_r(t) - Q_c(t)| dt from the sorted samples.

    The quantile functions are step functions jumping at i/n and j/m. In units
    of 1/(n·m) those grids are i·m and j·n, so every interval of the merged grid
    and the sample index on each side follow by integer arithmetic — no merge
    sort, which is what makes SciPy's version slow on large samples.
    """
    n, m = r.size, c.size
    u = np.sort(r)
    v = np.sort(c)
    if n * m >= _EXACT_GRID:
        return _cdf_wasserstein1(u, v)
    total = _grid_half(u, v, n, m, skip_ties=False) + _grid_half(v, u, m, n, skip_ties=True)
    return float(total / (n * m))


def _grid_half(x: FloatArray, y: FloatArray, nx: int, ny: int, *, skip_ties: bool) -> float:
    """Σ width · |x_i - y_j| over the intervals that start at a grid point of ``x``.

    The interval starting at t = i·ny has y-index j = floor(t / nx) and ends at
    the next grid point of either sample. When a point of ``x`` coincides with
    one of ``y`` the interval is counted by the other half, hence ``skip_ties``.
    """
    t = np.arange(nx, dtype=np.float64)
    t *= ny
    j = t / nx
    np.floor(j, out=j)  # exact: t < 2**52 and t/nx is never within 1e-11 of the next integer
    width = j + 1.0
    width *= nx
    np.minimum(width, t + ny, out=width)
    width -= t
    gap = y[j.astype(np.intp)]
    gap -= x
    np.abs(gap, out=gap)
    gap *= width
    if skip_ties:
        j *= nx
        gap[j == t] = 0.0
    return float(gap.sum())


def _cdf_wasserstein1(u: FloatArray, v: FloatArray) -> float:
    """W1 = ∫ |U(x) - V(x)| dx between the empirical CDFs of sorted ``u`` and ``v``.

    Hand-written after SciPy's ``scipy.stats._stats_py._cdf_distance`` (p = 1,
    no weights), step for step: merge the values, and over each gap between
    consecutive merged values take the gap times the difference of the two
    CDFs there. This is the path for samples too big for :func:`_grid_half`'s
    exact grid; it needs no SciPy import.
    """
    merged = np.concatenate((u, v))
    merged.sort(kind="mergesort")
    deltas = np.diff(merged)
    u_cdf = u.searchsorted(merged[:-1], "right") / u.size
    v_cdf = v.searchsorted(merged[:-1], "right") / v.size
    return float(np.vecdot(np.abs(u_cdf - v_cdf), deltas))


def jensenshannon(
    ref: npt.ArrayLike, cur: npt.ArrayLike, kind: Kind, *, bins: int = N_BINS
) -> tuple[float, float | None]:
    """Jensen-Shannon distance (natural log, range [0, 0.833]) between the binned proportions.

    ``scipy.spatial.distance.jensenshannon(p, q)`` on :func:`binned_counts`
    (as :func:`js_distance` computes it): the natural-log base Evidently uses, so
    its 0.1 threshold means the same here.

    Example:
        >>> jensenshannon(np.array(list("ab")), np.array(list("ab")), "categorical")[0]
        0.0
    """
    p, q = _proportions(ref, cur, kind, bins)
    return js_distance(p, q), None


def js_distance(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (natural log) between two weight vectors over the same bins.

    Hand-written after :func:`scipy.spatial.distance.jensenshannon` (base e, one
    axis), step for step: normalise each vector to sum 1, ``m = (p + q) / 2``,
    ``sqrt((Σ rel_entr(p, m) + Σ rel_entr(q, m)) / 2)``. Written here so a drift
    report does not import SciPy (see the module's docstring). The logarithms
    are Python's :mod:`math` ones, i.e. the C library's, as in SciPy: NumPy's
    SIMD ``log``/``log1p`` differ from them in the last bit for a few percent of
    inputs, and a report's few bins cost nothing to do one by one. So the
    result is SciPy's to the bit (scipy 1.17's ``rel_entr``).

    Example:
        >>> round(js_distance([1.0, 0.0], [0.0, 1.0]) ** 2, 6)  # disjoint: ln 2
        0.693147
    """
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    pa = pa / np.sum(pa)
    qa = qa / np.sum(qa)
    m = (pa + qa) / 2.0
    mid = m.tolist()
    left = np.fromiter(map(_rel_entr1, pa.tolist(), mid), np.float64, pa.size)
    right = np.fromiter(map(_rel_entr1, qa.tolist(), mid), np.float64, qa.size)
    js = np.sum(left) + np.sum(right)
    return float(np.sqrt(js / 2.0))


def _rel_entr1(x: float, y: float) -> float:
    """One ``rel_entr(x, y)``, the cases of :func:`rel_entr` with the C library's logarithms."""
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if x <= 0.0 or y <= 0.0:
        return 0.0 if x == 0.0 and y >= 0.0 else math.inf
    ratio = x / y
    if 0.5 < ratio < 2.0:
        return x * math.log1p((x - y) / y)
    if _TINY < ratio < math.inf:
        return x * math.log(ratio)
    return x * (math.log(x) - math.log(y))


def rel_entr(x: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
    """Elementwise relative entropy ``x·ln(x/y)``: :func:`scipy.special.rel_entr` in NumPy.

    The cases of SciPy's (xsf's) definition, in its order: NaN in either gives
    NaN; ``x = 0, y >= 0`` gives 0; any other ``x <= 0`` or ``y <= 0`` gives
    ``inf``; when ``x/y`` is within (0.5, 2) it is ``x·log1p((x - y)/y)``, which
    keeps precision when the two are close; when ``x/y`` under- or overflows,
    ``x·(ln x - ln y)``; else ``x·ln(x/y)``. Hand-written because
    ``scipy.special`` costs ~0.2 s to import, more than the statistics it is
    used for. Vectorized with NumPy's logarithms, so within a few units in the
    last place of SciPy's (for whole matrices of draws in :mod:`.calibrate`;
    :func:`js_distance` matches SciPy to the bit instead).

    Example:
        >>> rel_entr([0.5, 0.0, 0.5], [0.25, 0.5, 0.0]).tolist()
        [0.34657359027997264, 0.0, inf]
    """
    xb, yb = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    out = np.full(xb.shape, np.inf)
    with np.errstate(all="ignore"):  # every case is chosen below; none may warn
        ratio = xb / yb
        positive = (xb > 0.0) & (yb > 0.0)
        near = positive & (ratio > 0.5) & (ratio < 2.0)
        out[near] = xb[near] * np.log1p((xb[near] - yb[near]) / yb[near])
        plain = positive & ~near & (ratio > _TINY) & (ratio < np.inf)
        out[plain] = xb[plain] * np.log(ratio[plain])
        far = positive & ~near & ~plain
        out[far] = xb[far] * (np.log(xb[far]) - np.log(yb[far]))
    out[(xb == 0.0) & (yb >= 0.0)] = 0.0
    out[np.isnan(xb) | np.isnan(yb)] = np.nan
    return out


def hellinger(
    ref: npt.ArrayLike, cur: npt.ArrayLike, kind: Kind, *, bins: int = N_BINS
) -> tuple[float, float | None]:
    """Hellinger distance ‖√p - √q‖₂ / √2 (range [0, 1]) between the binned proportions.

    Same value as Evidently's √(1 - Σ√(p·q)), written in the form that keeps
    precision when the distributions are close.

    Example:
        >>> hellinger(np.array(["a"]), np.array(["b"]), "categorical")[0]
        1.0
    """
    p, q = _proportions(ref, cur, kind, bins)
    return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2.0)), None
