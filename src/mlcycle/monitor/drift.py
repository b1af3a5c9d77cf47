"""Data drift: which columns changed distribution between a reference and a current sample.

One test per column, chosen by mlcycle's calibrated default, by Evidently's
default rules (:func:`choose_test`) or named by the caller; the result is a
:class:`mlcycle.artifacts.DriftReport` with one :class:`~mlcycle.artifacts.FeatureDrift` per column.

Column handling, in order:

1. Columns: the ``columns`` argument; else the schema's feature columns; else the
   columns the two frames share. Datetime columns are left out of the defaults
   (as in Evidently) and refused when asked for by name.
2. Missing values: NaN/None — and ±inf in numeric columns — are dropped per
   side, as Evidently does. A column with no values left on one side is
   reported with ``test="skipped"``, ``drift=False`` (statistic 0, threshold 0):
   a column that went entirely null is a data-quality failure for validation
   and anomaly checks, not a distribution to compare, and one dead column must
   not stop the report for the others.
3. Kind: from the schema when it has the column (numeric → numeric; boolean,
   categorical, string → categorical), else from the dtype (numbers → numeric,
   booleans and text → categorical). A numeric column with at most 5 distinct
   values over both samples counts as categorical (Evidently's ``n_unique <= 5``).
4. Test: ``test="evidently"`` → :func:`choose_test` (Evidently's rules, fixed
   thresholds); ``test="auto"`` → Wasserstein (numeric) or Jensen-Shannon
   (categorical) at every sample size; else the named test.
5. Decision: with ``test="evidently"`` or an explicit ``threshold`` (which
   overrides every column's, like Evidently's ``stattest_threshold``), a column
   drifts when ``p_value < threshold`` (ks, chi2, z) or ``statistic >=
   threshold`` (psi, wasserstein, js, hellinger). Otherwise mlcycle's decision
   (:mod:`mlcycle.monitor.calibrate`): distances must reach
   ``max(effect floor, reference noise at this window size)``; p-values are
   adjusted by Benjamini-Hochberg across the columns and compared with ``fdr``.

Example:
    >>> report = drift_report(reference_df, current_df)
    >>> report.drifted
    ['dep_delay', 'carrier']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlcycle.artifacts import DriftReport, FeatureDrift
from mlcycle.errors import BadInput
from mlcycle.monitor.calibrate import NullModel, benjamini_hochberg, calibrated
from mlcycle.monitor.choice import (
    LOW_CARDINALITY,
    MODES,
    SMALL_SAMPLE,
    TESTS,
    DriftTest,
    choose_test,
)
from mlcycle.monitor.stattests import Kind
from mlcycle.schema import Schema, kind_of

__all__ = [
    "LOW_CARDINALITY",
    "MODES",
    "SMALL_SAMPLE",
    "TESTS",
    "DriftTest",
    "choose_test",
    "drift_report",
]


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str] | None = None,
    *,
    schema: Schema | None = None,
    test: str = "auto",
    threshold: float | None = None,
    fdr: float = 0.05,
    null_models: dict[tuple[str, str, int], NullModel] | None = None,
    seasonal: Sequence[str] = (),
) -> DriftReport:
    """Test every column for drift between ``reference`` and ``current``.

    See the module docstring for how columns, missing values, kinds and tests
    are decided. ``seasonal`` columns are tested and decided like the others but
    kept out of the other columns' Benjamini-Hochberg family (they form one of
    their own), so an expected calendar drift with a tiny p-value does not
    change how the other columns' p-values are adjusted.

    Raises :class:`BadInput` for an empty frame, a column missing on either
    side, a column whose type changed between the samples ("retyped"), a text
    column given a numeric-only test, an unknown test name or a bad threshold.

    Example:
        >>> report = drift_report(train_df, last_week_df, schema=schema)
        >>> [(f.feature, f.test, round(f.statistic, 3), f.drift) for f in report.features]
        [('distance', 'wasserstein', 0.012, False), ('carrier', 'js', 0.148, True)]
    """
    if test not in MODES and test not in TESTS:
        raise BadInput(
            f"unknown drift test '{test}'",
            "mlcycle implements a fixed set of drift tests",
            f"use one of: {', '.join(MODES)}, {', '.join(TESTS)}",
        )
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise BadInput(
            f"drift threshold {threshold} is not a positive number",
            "a threshold is a p-value level (e.g. 0.05) or a distance (e.g. 0.1)",
            "pass a positive threshold, or none for each test's default",
        )
    for side, frame in (("reference", reference), ("current", current)):
        if len(frame) == 0:
            raise BadInput(
                f"the {side} data has no rows",
                "drift compares the distribution of two samples",
                f"point the {side} at a non-empty dataset or window",
            )
    names = _columns(reference, current, columns, schema)
    results = [
        _column_drift(
            name, reference[name], current[name], _schema_kind(schema, name), test, threshold
        )
        for name in names
    ]
    features = [r.drift for r in results]
    if test != "evidently" and threshold is None:
        features = _mlcycle_decision(results, fdr, null_models, frozenset(seasonal))
    return DriftReport(reference_rows=len(reference), current_rows=len(current), features=features)


def _mlcycle_decision(
    results: list[_Result],
    fdr: float,
    cache: dict[tuple[str, str, int], NullModel] | None,
    seasonal: frozenset[str] = frozenset(),
) -> list[FeatureDrift]:
    """Calibrated effect-size thresholds for distances, Benjamini-Hochberg for p-values.

    Two Benjamini-Hochberg families: the seasonal columns, and all the others.
    """
    out: list[FeatureDrift | None] = [None] * len(results)
    pvals: list[int] = []
    seasonal_pvals: list[int] = []
    for i, r in enumerate(results):
        f = r.drift
        if f.test == "skipped" or r.ref_args is None:
            out[i] = f
        elif TESTS[f.test].uses_p_value:
            (seasonal_pvals if f.feature in seasonal else pvals).append(i)
        else:
            size = NullModel.bucket(r.n_cur)
            key = (f.feature, f.test, size)
            null = cache.get(key) if cache is not None else None
            if null is None:
                null = calibrated(r.ref_args, f.test, r.kind, size)
                if cache is not None:
                    cache[key] = null
            limit = null.threshold(r.n_ref, r.n_cur)
            out[i] = f.model_copy(update={"threshold": limit, "drift": bool(f.statistic >= limit)})
    for family in (pvals, seasonal_pvals):
        adjusted = benjamini_hochberg([results[i].drift.p_value for i in family])
        for i, adj in zip(family, adjusted, strict=True):
            f = results[i].drift
            out[i] = f.model_copy(
                update={
                    "threshold": fdr,
                    "p_adjusted": adj,
                    "drift": adj is not None and adj < fdr,
                }
            )
    return [f for f in out if f is not None]


# --- columns and kinds ---------------------------------------------------------------

_FAMILY = {
    "numeric": "numeric",
    "boolean": "boolean",
    "categorical": "text",
    "string": "text",
    "datetime": "datetime",
}
_NUMBERS = frozenset({"numeric", "boolean"})


def _schema_kind(schema: Schema | None, name: str) -> str | None:
    if schema is None:
        return None
    try:
        return schema.column(name).kind
    except KeyError:
        return None


def _columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str] | None,
    schema: Schema | None,
) -> list[str]:
    if columns is not None:
        names = list(dict.fromkeys(columns))
        origin = "the columns asked for"
    elif schema is not None:
        names = [c.name for c in schema.features if c.kind != "datetime"]
        origin = "the schema's feature columns"
    else:
        shared = set(current.columns)
        names = [
            c for c in reference.columns if c in shared and kind_of(reference[c]) != "datetime"
        ]
        origin = "the columns both frames share"
    if not names:
        raise BadInput(
            "no columns to test for drift",
            f"{origin} are none",
            "pass columns=[...] naming columns present in both frames",
        )
    gaps = []
    for side, frame in (("reference", reference), ("current", current)):
        missing = [n for n in names if n not in frame.columns]
        if missing:
            gaps.append(f"{_quote(missing)} missing from the {side} data")
    if gaps:
        raise BadInput(
            f"column {'; '.join(gaps)}",
            "drift is measured column by column on both samples",
            "add the column to that data, or leave it out of the columns tested"
            + (" (or update the schema)" if columns is None and schema is not None else ""),
        )
    for side, frame in (("reference", reference), ("current", current)):
        counts = frame.columns.value_counts()
        repeated = [n for n in names if counts[n] > 1]
        if repeated:
            raise BadInput(
                f"column {_quote(repeated)} appears more than once in the {side} data",
                "a drift test needs one series per column name",
                "drop or rename the duplicate columns",
            )
    return names


def _quote(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _family(series: pd.Series) -> str | None:
    """numeric / boolean / text / datetime, or None for a column with no values."""
    if series.count() == 0:
        return None
    return _FAMILY[kind_of(series)]


# --- one column ----------------------------------------------------------------------


def _column_drift(
    name: str,
    ref_s: pd.Series,
    cur_s: pd.Series,
    schema_kind: str | None,
    test: str,
    threshold: float | None,
) -> _Result:
    ref_fam, cur_fam = _family(ref_s), _family(cur_s)
    if ref_fam is None or cur_fam is None:
        return _Result(_skipped(name, schema_kind, ref_fam or cur_fam or _FAMILY[kind_of(ref_s)]))
    _refuse_unfit(name, ref_fam, cur_fam, schema_kind)
    if schema_kind is not None:
        numeric = schema_kind == "numeric" and ref_fam == cur_fam == "numeric"
    else:
        numeric = ref_fam == cur_fam == "numeric"
    kind: Kind = "numeric" if numeric else "categorical"
    values = _Values.of(ref_s, cur_s, numbers=ref_fam in _NUMBERS)
    if values is None:
        return _Result(_skipped(name, schema_kind, ref_fam))
    if values.uniques is not None:
        kind = "categorical"

    if test == "evidently":
        chosen, default = choose_test(kind, values.n_ref, values.n_unique)
    elif test == "auto":
        chosen = "wasserstein" if kind == "numeric" else "js"
        default = TESTS[chosen].threshold
    else:
        chosen, default = test, TESTS[test].threshold
    spec = TESTS[chosen]
    limit = default if threshold is None else threshold
    ref_args, cur_args = values.test_args(name, kind, spec)
    try:
        statistic, p_value = spec.func(ref_args, cur_args, kind)
    except BadInput as exc:
        raise BadInput(f"column '{name}': {exc.what}", exc.why, exc.fix) from None
    result = FeatureDrift(
        feature=name,
        kind=kind,
        test=chosen,
        statistic=statistic,
        p_value=p_value,
        threshold=limit,
        drift=spec.drifted(statistic, p_value, limit),
    )
    return _Result(result, ref_args, kind, int(np.asarray(ref_args).size), int(cur_args.size))


def _refuse_unfit(name: str, ref_fam: str, cur_fam: str, schema_kind: str | None) -> None:
    """Refuse a column whose two sides (or the contract) disagree on what it holds."""
    if ref_fam != cur_fam and {ref_fam, cur_fam} != _NUMBERS:
        raise BadInput(
            f"column '{name}' was retyped: {ref_fam} in the reference, {cur_fam} in the "
            "current data",
            "a drift test compares values of one kind, and a changed type usually means a "
            "broken upstream step",
            f"cast the current '{name}' back to {ref_fam} (e.g. pd.to_numeric) or fix the "
            "step that produces the current data",
        )
    if ref_fam == "datetime" or schema_kind == "datetime":
        raise BadInput(
            f"column '{name}' holds dates/times",
            "drift tests compare numbers or categories; Evidently leaves datetime columns out too",
            f"leave '{name}' out of the columns tested, or derive a numeric feature from it "
            "(e.g. hour of day) and test that",
        )
    if schema_kind == "numeric" and ref_fam == "text":
        raise BadInput(
            f"column '{name}' holds text but the schema says it is numeric",
            "the data contract and the data disagree",
            f"cast '{name}' to numbers (pd.to_numeric) or set its kind to categorical in "
            "the schema",
        )


@dataclass
class _Values:
    """One column's two sides as arrays: finite numbers, or integer codes of the categories."""

    n_ref: int
    n_unique: int
    ref_num: npt.NDArray[np.float64] | None = None
    cur_num: npt.NDArray[np.float64] | None = None
    #: The sorted distinct numbers, when there are few enough to count as categories.
    uniques: npt.NDArray[np.float64] | None = None
    ref_codes: npt.NDArray[np.intp] = field(default_factory=lambda: np.empty(0, dtype=np.intp))
    cur_codes: npt.NDArray[np.intp] = field(default_factory=lambda: np.empty(0, dtype=np.intp))

    @classmethod
    def of(cls, ref_s: pd.Series, cur_s: pd.Series, *, numbers: bool) -> _Values | None:
        """The arrays of both sides; ``None`` when a numeric side has no finite value."""
        if not numbers:
            ref_codes, cur_codes, n_unique = _text_codes(ref_s, cur_s)
            return cls(ref_codes.size, n_unique, ref_codes=ref_codes, cur_codes=cur_codes)
        ref_num, cur_num = _finite(ref_s), _finite(cur_s)
        if ref_num.size == 0 or cur_num.size == 0:
            return None
        n_unique, uniques = _few_unique(ref_num, cur_num, LOW_CARDINALITY)
        return cls(ref_num.size, n_unique, ref_num, cur_num, uniques)

    def test_args(self, name: str, kind: Kind, spec: DriftTest) -> tuple[np.ndarray, np.ndarray]:
        """What ``spec`` is called with: numbers, or codes (numbers as categories, text)."""
        if self.ref_num is not None and self.cur_num is not None:
            if kind == "categorical" and not spec.numeric_only:
                uniques = self.uniques
                if uniques is None:
                    uniques = np.unique(np.concatenate([self.ref_num, self.cur_num]))
                # Small dense codes take the bincount path in the stattests.
                return np.searchsorted(uniques, self.ref_num), np.searchsorted(
                    uniques, self.cur_num
                )
            return self.ref_num, self.cur_num
        if spec.numeric_only:
            raise BadInput(
                f"test '{spec.name}' needs numbers but column '{name}' holds text",
                f"{spec.title} compares numeric values",
                "use one of: " + ", ".join(t.name for t in TESTS.values() if not t.numeric_only),
            )
        return self.ref_codes, self.cur_codes


@dataclass
class _Result:
    """One column's outcome plus what the calibrated decision needs."""

    drift: FeatureDrift
    ref_args: np.ndarray | None = None
    kind: Kind = "numeric"
    n_ref: int = 0
    n_cur: int = 0


def _skipped(name: str, schema_kind: str | None, family: str) -> FeatureDrift:
    if schema_kind is not None:
        kind = "numeric" if schema_kind == "numeric" else "categorical"
    else:
        kind = "numeric" if family == "numeric" else "categorical"
    return FeatureDrift(
        feature=name,
        kind=kind,
        test="skipped",
        statistic=0.0,
        p_value=None,
        threshold=0.0,
        drift=False,
    )


def _finite(series: pd.Series) -> npt.NDArray[np.float64]:
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    keep = np.isfinite(values)
    return values if keep.all() else values[keep]


def _few_unique(
    ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64], limit: int
) -> tuple[int, npt.NDArray[np.float64] | None]:
    """``(n_unique, sorted distinct values)`` when there are at most ``limit``, else
    ``(limit + 1, None)`` — the exact count above the limit changes no decision.

    A strided sample settles most columns: more than ``limit`` distinct values
    in it means more in the column. Otherwise checking that every value is one
    of the sample's proves the count without hashing both samples.
    """
    sample = np.unique(
        np.concatenate([ref[:: max(1, ref.size // 256)], cur[:: max(1, cur.size // 256)]])
    )
    if sample.size > limit:
        return limit + 1, None
    if np.isin(ref, sample).all() and np.isin(cur, sample).all():
        return int(sample.size), sample
    distinct = pd.unique(np.concatenate([ref, cur]))
    if distinct.size > limit:
        return limit + 1, None
    return int(distinct.size), np.sort(distinct)


def _text_codes(
    ref_s: pd.Series, cur_s: pd.Series
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], int]:
    """Integer codes per side over the union of categories (missing values dropped)."""
    ref_codes, ref_uniques = pd.factorize(ref_s)
    cur_codes, cur_uniques = pd.factorize(cur_s)
    # Plain object indexes: aligns str, object and categorical dtypes alike.
    known = pd.Index(np.asarray(ref_uniques, dtype=object))
    mapping = known.get_indexer(pd.Index(np.asarray(cur_uniques, dtype=object)))
    new = mapping < 0
    n_new = int(new.sum())
    mapping[new] = len(known) + np.arange(n_new)
    ref_codes = ref_codes[ref_codes >= 0]
    cur_codes = mapping[cur_codes[cur_codes >= 0]]
    return ref_codes, cur_codes, len(known) + n_new
