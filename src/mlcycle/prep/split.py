"""Split strategies.

A time split is the default for data with a timestamp: the model is judged on
rows later than any it was trained on, as it will be in production. Rows that
share one timestamp never straddle two splits (that would leak the future).

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
                "too many rows share the timestamps at the cut",
                "add data or change the split fractions",
            )
    return {k: v.reset_index(drop=True) for k, v in parts.items()}


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
    ranges = {}
    if timestamp and split.strategy == "time":
        ranges = {k: (str(v[timestamp].min()), str(v[timestamp].max())) for k, v in parts.items()}
    record = Splits(
        strategy=split.strategy,
        rows={k: len(v) for k, v in parts.items()},
        time_ranges=ranges,
    )
    return record, parts
