"""Split strategies.

A time split is the default for data with a timestamp: the model is judged on
rows later than any it was trained on, as it will be in production. Rows that
share one timestamp never straddle two splits (that would leak the future).
A group split keeps all rows of one entity (``group_column``) in one split, so
the model is judged on entities it never saw. :func:`split_overlap` reports id
or group values found in two splits.

Example:
    >>> parts = split_frame(df, Split(strategy="time"), timestamp="time_hour", target="delayed")
    >>> sorted(parts)
    ['test', 'train', 'valid']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle.artifacts import Splits
from mlcycle.errors import BadInput
from mlcycle.spec import Split

MIN_ROWS_PER_SPLIT = 10


def split_frame(
    df: pd.DataFrame,
    split: Split,
    *,
    timestamp: str | None,
    target: str,
    seed: int = 42,
) -> dict[str, pd.DataFrame]:
    """Split ``df`` into train/valid/test frames as the spec says."""
    n = len(df)
    n_test = round(n * split.test_fraction)
    n_valid = round(n * split.valid_fraction)
    if min(n_test, n_valid, n - n_test - n_valid) < MIN_ROWS_PER_SPLIT:
        raise BadInput(
            f"{n} rows are too few to split",
            f"each of train/valid/test needs at least {MIN_ROWS_PER_SPLIT} rows",
            "add data or raise prepare.split.valid_fraction / test_fraction",
        )
    if split.strategy == "time":
        if timestamp is None:
            raise BadInput(
                "prepare.split.strategy is 'time' but problem.timestamp_column is not set",
                "a time split orders rows by their timestamp",
                "set problem.timestamp_column or use strategy: random",
            )
        ordered = df.sort_values(timestamp, kind="stable").reset_index(drop=True)
        times = ordered[timestamp].to_numpy()
        # Move each cut to the first row of its timestamp so no instant is split.
        cut_test = int(np.searchsorted(times, times[n - n_test], side="left"))
        cut_valid = int(np.searchsorted(times, times[n - n_test - n_valid], side="left"))
        parts = {
            "train": ordered.iloc[:cut_valid],
            "valid": ordered.iloc[cut_valid:cut_test],
            "test": ordered.iloc[cut_test:],
        }
    elif split.strategy == "group":
        parts = _group_parts(df, split, n_test, n_valid, seed)
    else:
        rng = np.random.default_rng(seed)
        if split.strategy == "stratified":
            order = _stratified_order(df[target], rng)
        else:
            order = rng.permutation(n)
        shuffled = df.iloc[order].reset_index(drop=True)
        parts = {
            "test": shuffled.iloc[:n_test],
            "valid": shuffled.iloc[n_test : n_test + n_valid],
            "train": shuffled.iloc[n_test + n_valid :],
        }
    for name, part in parts.items():
        if len(part) < MIN_ROWS_PER_SPLIT:
            raise BadInput(
                f"the {name} split has only {len(part)} rows",
                "too many rows share the timestamps at the cut"
                if split.strategy == "time"
                else "a few large groups hold most of the rows"
                if split.strategy == "group"
                else "the split fractions leave it too few rows",
                "add data or change the split fractions",
            )
    return {k: v.reset_index(drop=True) for k, v in parts.items()}


def _group_parts(
    df: pd.DataFrame, split: Split, n_test: int, n_valid: int, seed: int
) -> dict[str, pd.DataFrame]:
    """Whole groups, in a seeded random order, fill test, then valid; the rest is train.

    Filling by rows rather than by group count keeps the fractions close to the
    spec's even when group sizes differ; a missing group value is a group of its own.
    """
    column = split.group_column or ""
    if column not in df.columns:
        raise BadInput(
            f"prepare.split.group_column '{column}' is not a column of the data",
            f"the data has: {', '.join(map(str, df.columns[:20]))}",
            "name an existing column (an entity such as customer_id) or use another strategy",
        )
    codes, uniques = pd.factorize(df[column], use_na_sentinel=False)
    if len(uniques) < 3:
        raise BadInput(
            f"prepare.split.group_column '{column}' has {len(uniques)} distinct value(s)",
            "a group split needs at least one whole group in each of train, valid and test",
            "choose a column with many entities, or use strategy: random",
        )
    sizes = np.bincount(codes, minlength=len(uniques))
    order = np.random.default_rng(seed).permutation(len(uniques))
    assigned = np.full(len(uniques), 2, dtype=np.int8)  # 0 test, 1 valid, 2 train
    # Groups in that order fill test while it has fewer than n_test rows; the groups
    # left over then fill valid the same way; the rest is train. A group larger than
    # the part it would fill stays in train, so no part ends up far over its size.
    for part, wanted in ((0, n_test), (1, n_valid)):
        left = order[(assigned[order] == 2) & (sizes[order] <= wanted)]
        before = np.cumsum(sizes[left]) - sizes[left]
        assigned[left[before < wanted]] = part
    row_part = assigned[codes]
    return {
        "train": df[row_part == 2],
        "valid": df[row_part == 1],
        "test": df[row_part == 0],
    }


def split_overlap(parts: dict[str, pd.DataFrame], columns: list[str | None]) -> list[str]:
    """Findings for values of ``columns`` (an id, a group) that appear in more than one split.

    ``None`` entries (no id column, no group column) and columns the frames lack are
    skipped.

    A row id seen in two splits means duplicated rows: the model is tested on rows it
    trained on. A group seen in two splits means the test set is not made of new
    entities. Missing values are not counted.

    Example:
        >>> split_overlap({"train": a, "valid": b, "test": c}, ["flight_id"])
        ["3 flight_id value(s) appear in both train and test (e.g. 17, 42, 99)"]
    """
    findings: list[str] = []
    names = [name for name in ("train", "valid", "test") if name in parts]
    for column in dict.fromkeys(c for c in columns if c):
        if not all(column in parts[name].columns for name in names):
            continue
        values = {name: set(parts[name][column].dropna().unique()) for name in names}
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                shared = values[first] & values[second]
                if shared:
                    shown = ", ".join(str(v) for v in sorted(shared, key=str)[:3])
                    findings.append(
                        f"{len(shared)} {column} value(s) appear in both {first} and {second} "
                        f"(e.g. {shown})"
                    )
    return findings


def _stratified_order(y: pd.Series, rng: np.random.Generator) -> np.ndarray:
    """A permutation that interleaves classes so every prefix keeps the class balance."""
    positions = np.empty(len(y))
    for _, idx in y.groupby(y, dropna=False).indices.items():
        shuffled = rng.permutation(idx)
        # Spread each class evenly over [0, 1); sorting by that interleaves them.
        positions[shuffled] = (np.arange(len(idx)) + rng.random()) / len(idx)
    return np.argsort(positions, kind="stable")


def split_dataset(
    df: pd.DataFrame,
    split: Split,
    *,
    timestamp: str | None,
    target: str,
    seed: int = 42,
) -> tuple[Splits, dict[str, pd.DataFrame]]:
    """The prep stage: a dataset version's rows → the :class:`Splits` record and its frames.

    Example:
        >>> record, frames = split_dataset(df, Split(strategy="random"), timestamp=None,
        ...                                target="delayed")
        >>> record.rows == {k: len(v) for k, v in frames.items()}
        True
    """
    parts = split_frame(df, split, timestamp=timestamp, target=target, seed=seed)
    ranges: dict[str, tuple[str, str]] = {}
    if timestamp and split.strategy == "time":
        ranges = {k: (str(v[timestamp].min()), str(v[timestamp].max())) for k, v in parts.items()}
    record = Splits(
        strategy=split.strategy,
        rows={k: len(v) for k, v in parts.items()},
        time_ranges=ranges,
    )
    return record, parts


def recent_rows(
    df: pd.DataFrame,
    *,
    timestamp: str | None,
    last_days: float | None = None,
    last_rows: int | None = None,
) -> pd.DataFrame:
    """The most recent rows of a dataset version: the last ``last_days`` or ``last_rows``.

    Days are counted back from the newest timestamp in the data (not from the
    wall clock), so the same version always gives the same rows. Without a
    timestamp column, ``last_rows`` takes the last rows in the version's order
    and ``last_days`` is refused. Neither bound: every row.

    Example:
        >>> len(recent_rows(df, timestamp="day", last_rows=1000))
        1000
    """
    if last_days is None and last_rows is None:
        return df
    if last_days is not None:
        if timestamp is None:
            raise BadInput(
                "loop.window.last_days needs problem.timestamp_column",
                "the most recent days are found by the rows' timestamps",
                "set problem.timestamp_column, or use loop.window.last_rows",
            )
        times = pd.to_datetime(df[timestamp])
        start = times.max() - pd.Timedelta(days=last_days)
        return df[times > start].reset_index(drop=True)
    assert last_rows is not None
    ordered = df if timestamp is None else df.sort_values(timestamp, kind="stable")
    return ordered.tail(last_rows).reset_index(drop=True)
