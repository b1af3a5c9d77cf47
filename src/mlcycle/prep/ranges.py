"""Under a time split: numeric features whose later values leave the training range.

A model trained on January–May has never seen ``month = 6``; a tree model treats
June as May, and every monitoring window after the training period shows the
column as drifted and every row as out of range. This module finds such
features from the split itself, before anything is trained on them, so the user
can decide: exclude the column, or list it in ``data.features.seasonal`` when
the model should see it on purpose (monitoring then reports its drift without
alerting on it). It is a pure function of the frames: the split step calls it
and shows the findings.

Example:
    >>> findings = range_findings(train, holdout, ["month", "distance"], timestamp="time_hour")
    >>> [f.column for f in findings]
    ['month']
    >>> print(findings[0].message())   # doctest: +SKIP
    feature 'month' is 1–4 in training but 5–6 in validation/test (100% of those rows ...
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlcycle.schema import Schema

__all__ = ["RangeFinding", "range_findings", "range_summary", "split_range_findings"]

# Share of validation/test rows outside the training [min, max] that makes a finding.
# Rows from the same distribution land outside by chance about 2/(n_train + 1) of the
# time, more with heavy tails (a delay in minutes) and small samples (1.1% in a test
# with 1,050 normal training rows); a calendar column puts all of them there.
MIN_OUTSIDE_SHARE = 0.05
# |Spearman ρ| between a column and the timestamp on the training rows above which the
# column "tracks time": its future values will keep moving past the training range.
TRACKS_TIME = 0.9
# Ranks are computed on at most this many training rows (evenly spaced, so still in time).
_MAX_ROWS = 50_000

# Name tokens of calendar columns, and the whole-number range each takes.
_CALENDAR = {
    "month": (1, 12),
    "week": (0, 53),
    "weekofyear": (0, 53),
    "woy": (0, 53),
    "day": (0, 31),
    "dayofmonth": (1, 31),
    "dom": (1, 31),
    "dayofyear": (1, 366),
    "doy": (1, 366),
    "yday": (1, 366),
    "quarter": (1, 4),
    "year": (1900, 2200),
}
_SHORT_CYCLES = {"hour", "hourofday", "minute", "second", "weekday", "dow", "dayofweek"}


@dataclass(frozen=True)
class RangeFinding:
    """One numeric feature whose validation/test values lie outside its training range.

    Example:
        >>> f = RangeFinding("month", 1, 4, 5, 6, 1.0, calendar="month", time_rho=0.97)
        >>> f.to_dict()["holdout_max"]
        6.0
    """

    column: str
    train_min: float
    train_max: float
    holdout_min: float
    holdout_max: float
    outside_share: float  # of the validation/test rows with a value
    calendar: str | None = None  # the calendar unit the column's name and values suggest
    time_rho: float | None = None  # Spearman ρ with the timestamp on training rows

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready fields (for a step summary or `--json`)."""
        return {
            "column": self.column,
            "train_min": float(self.train_min),
            "train_max": float(self.train_max),
            "holdout_min": float(self.holdout_min),
            "holdout_max": float(self.holdout_max),
            "outside_share": round(float(self.outside_share), 4),
            "calendar": self.calendar,
            "time_rho": None if self.time_rho is None else round(float(self.time_rho), 3),
        }

    def message(self) -> str:
        """What was found, why it matters and what to do, in one line for a person."""
        why = []
        if self.calendar is not None:
            why.append(f"it looks like a calendar column ({self.calendar})")
        if self.time_rho is not None and abs(self.time_rho) >= TRACKS_TIME:
            why.append(f"it tracks the timestamp (Spearman ρ={self.time_rho:+.2f} in training)")
        reason = (
            " and ".join(why) + ", so later data will keep falling outside what the model learned"
            if why
            else "the model extrapolates flat from the edge of what it learned"
        )
        return (
            f"feature '{self.column}' is {_num(self.train_min)}–{_num(self.train_max)} in training "
            f"but {_num(self.holdout_min)}–{_num(self.holdout_max)} in validation/test "
            f"({self.outside_share:.0%} of those rows outside the training range): {reason}; "
            f"list it in data.features.seasonal if the model should see it (monitoring then "
            f"reports its drift without alerting), or add it to data.features.exclude"
        )


def range_findings(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    columns: Sequence[str],
    *,
    timestamp: str | None = None,
    seasonal: Collection[str] = (),
    min_share: float = MIN_OUTSIDE_SHARE,
) -> list[RangeFinding]:
    """The numeric ``columns`` whose ``holdout`` rows leave their ``train`` range.

    A column is reported when more than ``min_share`` of its non-null holdout values
    lie outside the training [min, max], or when it tracks ``timestamp`` (|Spearman ρ|
    ≥ 0.9 on the training rows: its future values will leave the range even if the
    holdout has not yet). Columns in ``seasonal`` (the user's decision already),
    columns absent from either frame, non-numeric or boolean columns and columns
    with no training values are skipped. Findings come in ``columns`` order.

    Example:
        >>> train = pd.DataFrame({"month": [1, 2, 3, 4], "x": [0.1, 0.5, 0.2, 0.9]})
        >>> holdout = pd.DataFrame({"month": [5, 6], "x": [0.3, 0.4]})
        >>> [f.column for f in range_findings(train, holdout, ["month", "x"])]
        ['month']
        >>> range_findings(train, holdout, ["month", "x"], seasonal=["month"])
        []
    """
    if not 0 <= min_share < 1:
        raise ValueError(f"min_share must be in [0, 1), got {min_share}")
    skip = set(seasonal)
    times = _time_ranks(train, timestamp)
    found = []
    for name in columns:
        if name in skip or name not in train.columns or name not in holdout.columns:
            continue
        if not _is_number(train[name]):
            continue
        fit = pd.to_numeric(train[name], errors="coerce").dropna()
        later = pd.to_numeric(holdout[name], errors="coerce").dropna()
        if fit.empty or later.empty:
            continue
        lo, hi = float(fit.min()), float(fit.max())
        share = float(((later < lo) | (later > hi)).mean())
        rho = _time_rho(train[name], times)
        if share <= min_share and (rho is None or abs(rho) < TRACKS_TIME):
            continue
        found.append(
            RangeFinding(
                column=name,
                train_min=lo,
                train_max=hi,
                holdout_min=float(later.min()),
                holdout_max=float(later.max()),
                outside_share=share,
                calendar=_calendar_unit(name, pd.concat([fit, later])),
                time_rho=rho,
            )
        )
    return found


def split_range_findings(
    frames: Mapping[str, pd.DataFrame],
    columns: Sequence[str],
    *,
    timestamp: str | None,
    seasonal: Collection[str] = (),
) -> list[RangeFinding]:
    """:func:`range_findings` of a split: ``train`` against every other part together.

    Example:
        >>> record, frames = split_dataset(df, Split(strategy="time"), timestamp="ts", target="y")
        >>> split_range_findings(frames, ["month"], timestamp="ts")   # doctest: +SKIP
    """
    holdout = [f for name, f in frames.items() if name != "train" and len(f)]
    if "train" not in frames or not holdout or not columns:
        return []
    later = pd.concat([f[[c for c in columns if c in f.columns]] for f in holdout])
    return range_findings(frames["train"], later, columns, timestamp=timestamp, seasonal=seasonal)


def range_summary(
    frames: Mapping[str, pd.DataFrame],
    schema: Schema,
    timestamp: str | None,
    seasonal: Collection[str] = (),
) -> dict[str, Any]:
    """The split step's summary entries for the numeric features of ``schema``:
    ``warnings`` (one message each, printed by `mlcycle run`) and ``out_of_range`` (the
    figures, kept in the run log); empty when nothing is found.

    Example:
        >>> range_summary(frames, schema, "time_hour", seasonal=[])["out_of_range"][0]["column"]
        'month'
    """
    numeric = [c.name for c in schema.features if c.kind == "numeric"]
    found = split_range_findings(frames, numeric, timestamp=timestamp, seasonal=seasonal)
    if not found:
        return {}
    return {"warnings": [f.message() for f in found], "out_of_range": [f.to_dict() for f in found]}


def _is_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _time_ranks(train: pd.DataFrame, timestamp: str | None) -> pd.Series | None:
    """The ranks of the training timestamps (on an evenly spaced subsample), or None."""
    if timestamp is None or timestamp not in train.columns or len(train) < 3:
        return None
    step = max(1, len(train) // _MAX_ROWS)
    ts = pd.to_datetime(train[timestamp].iloc[::step], utc=True, errors="coerce")
    if ts.notna().sum() < 3:
        return None
    return ts.rank()


def _time_rho(col: pd.Series, times: pd.Series | None) -> float | None:
    """Spearman ρ of ``col`` with the timestamp (Pearson on ranks); None when undefined."""
    if times is None:
        return None
    values = pd.to_numeric(col.loc[times.index], errors="coerce")
    both = pd.DataFrame({"x": values.rank(), "t": times}).dropna()
    if len(both) < 3 or both["x"].nunique() < 2 or both["t"].nunique() < 2:
        return None
    return float(np.corrcoef(both["x"], both["t"])[0, 1])


def _calendar_unit(name: str, values: pd.Series) -> str | None:
    """The calendar unit a column's name spells (month, week, day…) when its values fit it.

    Example:
        >>> _calendar_unit("dep_month", pd.Series([1, 7, 12]))
        'month'
        >>> _calendar_unit("month", pd.Series([1.5, 40.0])) is None
        True
    """
    # Split snake_case, kebab-case and camelCase into lower-case tokens.
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]
    joined = "".join(tokens)  # day_of_year → dayofyear
    # Cycles shorter than a week repeat inside any training period: not the problem here.
    if {joined, *tokens} & _SHORT_CYCLES or "dayofweek" in joined:
        return None
    whole = bool((values == np.floor(values)).all())
    for unit in (joined, *tokens):
        if unit in _CALENDAR and whole:
            low, high = _CALENDAR[unit]
            if low <= values.min() and values.max() <= high:
                return unit
    return None


def _num(value: float) -> str:
    """A range end as a person writes it: 5, not 5.0; 0.125 stays 0.125."""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"
