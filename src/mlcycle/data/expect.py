"""Declared expectations (``data.expectations``): checks beyond the contract, with severities.

Each expectation becomes zero or one :class:`~mlcycle.schema.Violation` with
the expectation's severity: ``error`` stops the pipeline and quarantines the
version, ``warn`` is recorded and shown. Checks:

* ``row_count`` — ``min``/``max`` rows;
* ``null_rate`` — the fraction of nulls in ``column`` within ``min``/``max``;
* ``range`` — every value of ``column`` within ``min``/``max``;
* ``allowed`` — every value of ``column`` among ``values``;
* ``unique`` — no repeated value in ``column``;
* ``freshness`` — the newest ``column`` value at most ``max_age_days`` before now;
* ``distribution`` — each column's (or one ``column``'s) Jensen–Shannon distance
  to the previous valid version's profile at most ``threshold``.

Example:
    >>> found = check_expectations(df, [Expectation(check="row_count", min=1000)], profile)
    >>> [(v.check, v.severity) for v in found]
    [('row_count', 'error')]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from mlcycle.artifacts import Profile
from mlcycle.data.compare import profile_distances
from mlcycle.schema import Violation
from mlcycle.spec import Expectation


def check_expectations(
    df: pd.DataFrame,
    expectations: Sequence[Expectation],
    profile: Profile,
    previous: Profile | None = None,
    *,
    now: datetime | None = None,
) -> list[Violation]:
    """Every expectation ``df`` breaks, as violations with the declared severity.

    Example:
        >>> df = pd.DataFrame({"x": [1, None, 3]})
        >>> exp = Expectation(check="null_rate", column="x", max=0.1, severity="warn")
        >>> [v.message for v in check_expectations(df, [exp], profile)]
        ["column 'x' is 33.3% null; expected at most 10.0%"]
    """
    out: list[Violation] = []
    for exp in expectations:
        if exp.column is not None and exp.column not in df.columns and exp.check != "distribution":
            out.append(_v(exp, f"expectation on column '{exp.column}': no such column"))
            continue
        found = _check(df, exp, profile, previous, now or datetime.now(UTC))
        out.extend(found)
    return out


def _v(exp: Expectation, message: str, count: int = 0) -> Violation:
    check = "missing" if message.endswith("no such column") else exp.check
    return Violation(
        column=exp.column,
        check=check,
        severity=exp.severity,
        message=message,
        count=count,
    )


def _check(
    df: pd.DataFrame,
    exp: Expectation,
    profile: Profile,
    previous: Profile | None,
    now: datetime,
) -> list[Violation]:
    rows = len(df)
    if exp.check == "row_count":
        if (exp.min is not None and rows < exp.min) or (exp.max is not None and rows > exp.max):
            return [_v(exp, f"{rows} rows; expected between {exp.min} and {exp.max}")]
        return []
    if exp.check == "distribution":
        return _distribution(exp, profile, previous)
    assert exp.column is not None
    series = df[exp.column]
    if exp.check == "null_rate":
        rate = float(series.isna().mean()) if rows else 0.0
        if exp.max is not None and rate > exp.max:
            return [
                _v(
                    exp,
                    f"column '{exp.column}' is {rate:.1%} null; expected at most {exp.max:.1%}",
                    int(series.isna().sum()),
                )
            ]
        if exp.min is not None and rate < exp.min:
            return [_v(exp, f"column '{exp.column}' is {rate:.1%} null; expected ≥ {exp.min:.1%}")]
        return []
    if exp.check == "range":
        values = pd.to_numeric(series, errors="coerce")
        bad = pd.Series(False, index=series.index)
        if exp.min is not None:
            bad |= values < exp.min
        if exp.max is not None:
            bad |= values > exp.max
        unparsed = int((values.isna() & series.notna()).sum())
        count = int(bad.sum()) + unparsed
        if count:
            return [
                _v(
                    exp,
                    f"column '{exp.column}': {count} value(s) outside [{exp.min}, {exp.max}]"
                    + (f" ({unparsed} not numbers)" if unparsed else ""),
                    count,
                )
            ]
        return []
    if exp.check == "allowed":
        allowed = {str(v) for v in exp.values or []}
        present = series.dropna().astype(str)
        outside = present[~present.isin(allowed)]
        if len(outside):
            examples = sorted(set(outside.head(100)))[:5]
            return [
                _v(
                    exp,
                    f"column '{exp.column}': {len(outside)} value(s) not allowed, e.g. {examples}",
                    len(outside),
                )
            ]
        return []
    if exp.check == "unique":
        dups = int(series.dropna().duplicated().sum())
        if dups:
            return [_v(exp, f"column '{exp.column}' has {dups} repeated value(s)", dups)]
        return []
    if exp.check == "freshness":
        return _freshness(exp, series, now)
    raise AssertionError(exp.check)


def _freshness(exp: Expectation, series: pd.Series, now: datetime) -> list[Violation]:
    assert exp.max_age_days is not None
    stamps = series if pd.api.types.is_datetime64_any_dtype(series) else None
    if stamps is None:
        stamps = pd.to_datetime(series, errors="coerce", utc=True)
    if stamps.dt.tz is None:
        stamps = stamps.dt.tz_localize("UTC")
    newest = stamps.max()
    if pd.isna(newest):
        return [_v(exp, f"column '{exp.column}' has no timestamps to judge freshness")]
    age = (pd.Timestamp(now) - newest).total_seconds() / 86400
    if age > exp.max_age_days:
        return [
            _v(
                exp,
                f"newest '{exp.column}' is {newest} ({age:.1f} days old); expected at most "
                f"{exp.max_age_days} days",
            )
        ]
    return []


def _distribution(exp: Expectation, profile: Profile, previous: Profile | None) -> list[Violation]:
    if previous is None:
        return []  # the first version has nothing to be compared with
    distances = profile_distances(previous, profile)
    if exp.column is not None:
        distances = {k: v for k, v in distances.items() if k == exp.column}
    out = []
    for name, distance in distances.items():
        if distance is not None and distance > exp.threshold:
            out.append(
                Violation(
                    column=name,
                    check="distribution",
                    severity=exp.severity,
                    message=f"column '{name}' moved from the previous version: Jensen–Shannon "
                    f"distance {distance:.3f} > {exp.threshold}",
                )
            )
    return out
