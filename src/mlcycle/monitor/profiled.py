"""Profiles in monitoring: what training saw, window profiles, and their roll-ups.

The bundle's ``profile.json`` summarises every row of the dataset version the
model was trained from; the reference sample (``reference.parquet``) holds at
most 50,000 of them and misses rare categories and the extremes. So every check
that asks "did training see this value?" reads the profile
(:func:`training_values`), and each window of production rows is profiled with
the same code (:func:`window_profile`, :mod:`mlcycle.profiles`) and stored with
the window, so windows merge into coarser roll-ups — a month of daily windows,
or every window since a promotion — without reading the log again
(:func:`rollup`).

Example:
    >>> known = training_values(ref.profile, ref.schema, ref.frame, ["distance", "dest"])
    >>> value_checks(window_rows, known, ["distance", "dest"])
    {'out_of_range:distance': 2, 'unseen:dest': 14}
    >>> [r.key for r in rollup(monitor.windows(), "month")]
    ['2013-07', '2013-08']
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import ColumnProfile, Profile
from mlcycle.errors import BadInput
from mlcycle.profiles import compute_profile, merge_many
from mlcycle.schema import Schema

#: How a roll-up groups windows: each on its own, by calendar month, or all together.
ROLLUPS = ("window", "month", "all")


@dataclass
class TrainingValues:
    """What the training data held per feature: numeric ranges and category sets.

    ``complete[f]`` is True when the category set of ``f`` came wholly from the
    profile (it lists every value); otherwise the profile's ``top`` values were
    united with the contract's categories and the reference sample's.
    """

    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, frozenset[str]] = field(default_factory=dict)
    complete: dict[str, bool] = field(default_factory=dict)


def _kind(schema: Schema, profile: Profile | None, sample: pd.DataFrame, name: str) -> str:
    try:
        return schema.column(name).kind
    except KeyError:
        pass
    if profile is not None:
        try:
            return profile.column(name).kind
        except KeyError:
            pass
    series = sample[name] if name in sample else pd.Series(dtype="object")
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "numeric"
    return "categorical"


def _profile_column(profile: Profile | None, name: str) -> ColumnProfile | None:
    if profile is None:
        return None
    try:
        return profile.column(name)
    except KeyError:
        return None


def training_values(
    profile: Profile | None, schema: Schema, sample: pd.DataFrame, features: Sequence[str]
) -> TrainingValues:
    """The range of every numeric feature and the category set of every other one.

    Ranges are the profile's ``min``/``max`` (every training row). Category sets
    are the profile's ``top`` values, which hold every value when the column has
    at most 20 (``distinct == len(top)``); a column with more is completed with
    the contract's ``categories`` and the sample's values, since the profile
    does not list them. Without a profile (an old bundle) the sample's ranges
    and values are used. Datetime features are left out.

    Example:
        >>> known = training_values(ref.profile, ref.schema, ref.frame, ["distance", "dest"])
        >>> known.ranges["distance"], known.complete["dest"]
        ((17.0, 4983.0), False)
    """
    out = TrainingValues()
    for name in features:
        kind = _kind(schema, profile, sample, name)
        col = _profile_column(profile, name)
        if kind == "datetime":
            continue
        if kind == "numeric":
            if col is not None and col.min is not None and col.max is not None:
                out.ranges[name] = (float(col.min), float(col.max))
            elif name in sample:
                values = pd.to_numeric(sample[name], errors="coerce").to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
                values = values[np.isfinite(values)]
                if values.size:
                    out.ranges[name] = (float(values.min()), float(values.max()))
            continue
        seen: set[str] = set(col.top) if col is not None else set()
        complete = col is not None and col.distinct is not None and col.distinct <= len(col.top)
        if not complete:
            with contextlib.suppress(KeyError):
                seen.update(schema.column(name).categories or [])
            if name in sample:
                seen.update(sample[name].dropna().astype(str).unique().tolist())
        out.categories[name] = frozenset(seen)
        out.complete[name] = complete
    return out


def _outside(rows: pd.DataFrame, known: TrainingValues, name: str) -> np.ndarray:
    """Rows of ``rows`` whose value of ``name`` training never saw (nulls never count)."""
    values = rows[name]
    if name in known.ranges:
        low, high = known.ranges[name]
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            return np.asarray((num < low) | (num > high))
    if name in known.categories:
        null = values.isna().to_numpy()
        text = values.astype("object").where(~null, None).astype(str)
        return np.asarray(~text.isin(known.categories[name]).to_numpy() & ~null)
    return np.zeros(len(rows), dtype=bool)


def value_checks(
    rows: pd.DataFrame,
    known: TrainingValues,
    features: Sequence[str],
    seasonal: Sequence[str] = (),
) -> dict[str, Any]:
    """Rows with a value training never saw, per feature and in all.

    Returns ``{"out_of_range:<f>": n, "unseen:<f>": n}`` (non-zero counts only,
    every feature, seasonal ones too) plus ``"rows_out_of_range"`` and
    ``"rows_unseen"``: the rows with any such value among the features that are
    *not* seasonal — a new month is what the calendar brings, not a surprise.

    Example:
        >>> value_checks(rows, known, ["distance", "month"], seasonal=["month"])
        {'out_of_range:month': 310, 'rows_out_of_range': 0, 'rows_unseen': 0}
    """
    skip = set(seasonal)
    counts: dict[str, Any] = {}
    any_range = np.zeros(len(rows), dtype=bool)
    any_unseen = np.zeros(len(rows), dtype=bool)
    for name in features:
        if name not in rows:
            continue
        out = _outside(rows, known, name)
        if not out.any():
            continue
        ranged = name in known.ranges
        counts[f"{'out_of_range' if ranged else 'unseen'}:{name}"] = int(out.sum())
        if name in skip:
            continue
        if ranged:
            any_range |= out
        else:
            any_unseen |= out
    counts["rows_out_of_range"] = int(any_range.sum())
    counts["rows_unseen"] = int(any_unseen.sum())
    return counts


def window_profile(rows: pd.DataFrame, schema: Schema, features: Sequence[str]) -> Profile:
    """The profile of a window's feature columns, kinds from the model's contract.

    A feature the contract does not describe is profiled by its dtype (numbers
    as numeric, anything else as categorical).

    Example:
        >>> window_profile(rows, ref.schema, ["distance"]).column("distance").max
        4983.0
    """
    from mlcycle.schema import ColumnSchema

    columns = []
    for name in features:
        if name not in rows:
            continue
        try:
            columns.append(schema.column(name))
        except KeyError:
            series = rows[name]
            numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(
                series
            )
            columns.append(ColumnSchema(name=name, kind="numeric" if numeric else "categorical"))
    return compute_profile(rows, Schema(columns=columns))


@dataclass
class Rollup:
    """Windows merged into one: their keys, merged profile and summed value checks."""

    key: str
    windows: list[str]
    profile: Profile
    checks: dict[str, int]
    #: Windows of the group stored without a profile (computed before profiles were kept).
    missing: list[str] = field(default_factory=list)


def _group(key: str, by: str) -> str:
    if by == "window":
        return key
    if by == "all":
        return "all"
    # month: day keys (YYYY-MM-DD) and month keys (YYYY-MM) share their first 7 characters.
    if len(key) >= 7 and key[4] == "-" and key[:4].isdigit() and key[5:7].isdigit():
        return key[:7]
    raise BadInput(
        f"window {key} cannot be rolled up by month",
        "ISO weeks and row windows straddle months; only day and month windows nest in months",
        "roll up with --by all (or --by window), or monitor with day windows",
    )


def rollup(windows: Sequence[Any], by: str = "all") -> list[Rollup]:
    """Merge the stored window profiles by ``by`` (``window``, ``month`` or ``all``).

    ``windows`` are :class:`~mlcycle.monitor.alerts.Window` objects (``key`` and
    ``metrics``, in time order). Counts, nulls, min, max, mean and m2 of a
    merged profile equal those of the concatenated windows' rows (see
    :func:`mlcycle.profiles.merge_profiles` for what is approximate); value
    checks add up. Windows without a stored profile are listed in ``missing``.

    Example:
        >>> [(r.key, r.profile.rows) for r in rollup(mon.windows(), "month")]
        [('2013-07', 28800), ('2013-08', 29544)]
    """
    if by not in ROLLUPS:
        raise BadInput(
            f"unknown roll-up '{by}'",
            "window profiles merge per window, per calendar month or all together",
            f"use one of: {', '.join(ROLLUPS)}",
        )
    groups: dict[str, list[Any]] = {}
    for w in windows:
        groups.setdefault(_group(w.key, by), []).append(w)
    out = []
    for key, members in groups.items():
        stored = [w for w in members if w.metrics.get("profile")]
        missing = [w.key for w in members if not w.metrics.get("profile")]
        if not stored:
            continue
        profiles = [Profile.model_validate(w.metrics["profile"]) for w in stored]
        checks: dict[str, int] = {}
        for w in stored:
            for k, v in (w.metrics.get("value_checks") or {}).items():
                checks[k] = checks.get(k, 0) + int(v)
        out.append(Rollup(key, [w.key for w in stored], merge_many(profiles), checks, missing))
    return out


def profile_figures(
    profile: Profile,
    known: TrainingValues,
    checks: dict[str, int],
    seasonal: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Per feature of a window (or roll-up) profile: nulls, range, values training never saw.

    ``new_values`` are the window's most frequent values (its profile's ``top``)
    that training never held; ``unseen_rows`` / ``out_of_range_rows`` count every
    such row (from :func:`value_checks`, exact).

    Example:
        >>> profile_figures(r.profile, known, r.checks)[0]
        {'feature': 'distance', 'kind': 'numeric', 'rows': 100, 'nulls': 0, ...}
    """
    skip = set(seasonal)
    out = []
    for col in profile.columns:
        row: dict[str, Any] = {
            "feature": col.name,
            "kind": col.kind,
            "rows": col.count + col.nulls,
            "nulls": col.nulls,
            "null_share": col.nulls / max(col.count + col.nulls, 1),
            "seasonal": col.name in skip,
        }
        if col.name in known.ranges:
            low, high = known.ranges[col.name]
            row.update(
                min=col.min,
                max=col.max,
                mean=col.mean,
                train_min=low,
                train_max=high,
                out_of_range_rows=checks.get(f"out_of_range:{col.name}", 0),
            )
        elif col.name in known.categories:
            seen = known.categories[col.name]
            row.update(
                distinct=col.distinct,
                new_values=sorted(v for v in col.top if v not in seen),
                unseen_rows=checks.get(f"unseen:{col.name}", 0),
            )
        out.append(row)
    return out


__all__ = [
    "ROLLUPS",
    "Rollup",
    "TrainingValues",
    "profile_figures",
    "rollup",
    "training_values",
    "value_checks",
    "window_profile",
]
