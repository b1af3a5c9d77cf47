"""Split strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.errors import BadInput
from mlcycle.prep import split_frame
from mlcycle.spec import Split


def _frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    hours = pd.date_range("2024-01-01", periods=n // 4, freq="h").repeat(4)[:n]
    return pd.DataFrame(
        {"t": rng.permutation(hours), "x": rng.normal(size=n), "y": rng.random(n) < 0.3}
    )


def test_time_split_is_ordered_and_never_splits_a_timestamp() -> None:
    parts = split_frame(_frame(), Split(strategy="time"), timestamp="t", target="y")
    assert sum(len(p) for p in parts.values()) == 1000
    assert parts["train"]["t"].max() < parts["valid"]["t"].min()
    assert parts["valid"]["t"].max() < parts["test"]["t"].min()
    assert abs(len(parts["test"]) - 150) <= 4


def test_stratified_keeps_class_balance() -> None:
    df = _frame()
    parts = split_frame(df, Split(strategy="stratified"), timestamp=None, target="y")
    overall = df["y"].mean()
    for part in parts.values():
        assert abs(part["y"].mean() - overall) < 0.02


def test_random_split_is_seeded() -> None:
    df = _frame()
    a = split_frame(df, Split(strategy="random"), timestamp=None, target="y", seed=1)
    b = split_frame(df, Split(strategy="random"), timestamp=None, target="y", seed=1)
    pd.testing.assert_frame_equal(a["test"], b["test"])
    # The seed must matter: another seed draws another test set (two random draws of
    # 150 rows out of 1000 sharing more than half would be a ~1e-40 event).
    c = split_frame(df, Split(strategy="random"), timestamp=None, target="y", seed=2)
    shared = set(a["test"]["x"]) & set(c["test"]["x"])
    assert len(shared) < len(a["test"]) // 2
    # ... and every row lands in exactly one part, shuffled (not the frame's first rows).
    together = pd.concat([c["train"], c["valid"], c["test"]])
    assert sorted(together["x"]) == sorted(df["x"])
    assert set(c["test"]["x"]) != set(df["x"].iloc[: len(c["test"])])


def test_too_few_rows_and_missing_timestamp() -> None:
    with pytest.raises(BadInput, match="too few"):
        split_frame(_frame(20), Split(), timestamp="t", target="y")
    with pytest.raises(BadInput, match="timestamp_column"):
        split_frame(_frame(), Split(strategy="time"), timestamp=None, target="y")
