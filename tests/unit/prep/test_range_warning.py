"""The time-split range warning: which numeric features leave their training range."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.prep import RangeFinding, range_findings, split_range_findings


def _year(seed: int = 0) -> pd.DataFrame:
    """A year of hourly-ish rows in time order: a month column, a heavy-tailed delay, a
    day-of-week, a distance and a running counter that tracks time."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", "2024-12-31 23:00", freq="6h", tz="UTC")
    return pd.DataFrame(
        {
            "ts": ts,
            "month": ts.month,
            "dep_delay": rng.exponential(15.0, len(ts)),
            "dayOfWeek": ts.day_of_week,
            "distance": rng.uniform(100, 2500, len(ts)),
            "counter": np.arange(len(ts)) * 3 + rng.integers(0, 3, len(ts)),
            "flag": rng.random(len(ts)) < 0.5,
            "carrier": rng.choice(["AA", "UA"], len(ts)),
        }
    )


def _cut(df: pd.DataFrame, at: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    later = df["ts"] >= pd.Timestamp(at, tz="UTC")
    return df[~later], df[later]


COLUMNS = ["month", "dep_delay", "dayOfWeek", "distance", "counter", "flag", "carrier"]


def test_a_month_column_past_the_training_range_is_found_with_its_ranges() -> None:
    train, holdout = _cut(_year(), "2024-06-01")
    found = {f.column: f for f in range_findings(train, holdout, COLUMNS, timestamp="ts")}
    # Cyclic columns that repeat within the training period, heavy tails that cross the
    # maximum now and then, booleans and text are not reported.
    assert set(found) == {"month", "counter"}
    month = found["month"]
    assert (month.train_min, month.train_max) == (1, 5)
    assert (month.holdout_min, month.holdout_max) == (6, 12)
    assert month.outside_share == 1.0
    assert month.calendar == "month"
    assert month.time_rho is not None and month.time_rho > 0.95
    assert found["counter"].calendar is None  # tracks time but is no calendar unit
    text = month.message()
    for part in ("'month'", "1–5 in training", "6–12 in validation/test", "100%"):
        assert part in text, part
    assert "calendar column (month)" in text and "tracks the timestamp" in text
    assert "data.features.seasonal" in text and "data.features.exclude" in text


def test_seasonal_columns_are_the_users_decision_and_not_reported() -> None:
    train, holdout = _cut(_year(), "2024-06-01")
    found = range_findings(train, holdout, COLUMNS, timestamp="ts", seasonal=["month"])
    assert [f.column for f in found] == ["counter"]


def test_a_few_holdout_rows_past_the_maximum_are_tolerated_many_are_not() -> None:
    train = pd.DataFrame({"x": np.linspace(0, 100, 1000)})
    few = pd.DataFrame({"x": [50.0] * 970 + [101.0] * 30})  # 3 % outside: chance, tails
    many = pd.DataFrame({"x": [50.0] * 940 + [101.0] * 60})  # 6 % outside
    assert range_findings(train, few, ["x"]) == []
    (finding,) = range_findings(train, many, ["x"])
    assert finding.outside_share == pytest.approx(0.06)
    assert (finding.holdout_min, finding.holdout_max) == (50.0, 101.0)
    assert range_findings(train, many, ["x"], min_share=0.1) == []
    assert [f.column for f in range_findings(train, few, ["x"], min_share=0.01)] == ["x"]
    below = pd.DataFrame({"x": [-1.0] * 60 + [50.0] * 940})  # the lower edge counts too
    assert [f.column for f in range_findings(train, below, ["x"])] == ["x"]


def test_a_column_tracking_time_is_reported_even_inside_the_range() -> None:
    # The holdout happens to stay inside the range, but the column rises with time:
    # later data will leave it.
    ts = pd.date_range("2024-01-01", periods=400, freq="D", tz="UTC")
    train = pd.DataFrame({"ts": ts, "age_days": np.arange(400.0)})
    holdout = pd.DataFrame({"age_days": [10.0, 200.0, 399.0]})
    (finding,) = range_findings(train, holdout, ["age_days"], timestamp="ts")
    assert finding.outside_share == 0.0 and finding.time_rho == pytest.approx(1.0)
    assert "tracks the timestamp" in finding.message()
    assert range_findings(train, holdout, ["age_days"]) == []  # no timestamp, no tracking


def test_calendar_units_need_the_name_and_whole_values_in_range() -> None:
    train = pd.DataFrame({"week_of_year": [1, 2, 3], "day": [1.5, 2.5, 3.5], "year": [2020] * 3})
    holdout = pd.DataFrame({"week_of_year": [30, 31], "day": [20.5, 21.5], "year": [2021] * 2})
    found = {f.column: f for f in range_findings(train, holdout, list(train.columns))}
    assert found["week_of_year"].calendar == "weekofyear"
    assert found["day"].calendar is None  # not whole numbers: not a day of the month
    assert found["year"].calendar == "year"
    assert "calendar column" not in found["day"].message()
    weekly = pd.DataFrame({"dayOfWeek": [0, 1], "dep_day_of_week": [0, 1], "hour_of_day": [5, 6]})
    later = pd.DataFrame({"dayOfWeek": [6, 6], "dep_day_of_week": [6, 6], "hour_of_day": [23, 23]})
    assert {f.calendar for f in range_findings(weekly, later, list(weekly.columns))} == {None}


def test_missing_empty_and_null_columns_are_skipped() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0], "b": [None, None], "c": [1, 2]})
    holdout = pd.DataFrame({"a": [None, None], "b": [5.0, 6.0]})
    assert range_findings(train, holdout, ["a", "b", "c", "nope"]) == []
    with pytest.raises(ValueError, match="min_share"):
        range_findings(train, holdout, ["a"], min_share=1.5)


def test_the_split_form_compares_train_with_valid_and_test_together() -> None:
    df = _year()
    frames = {
        "train": df[df["month"] <= 8],
        "valid": df[df["month"].between(9, 10)],
        "test": df[df["month"] >= 11],
    }
    (month,) = split_range_findings(frames, ["month", "distance"], timestamp=None)
    assert (month.holdout_min, month.holdout_max) == (9, 12)
    assert split_range_findings({"train": frames["train"]}, ["month"], timestamp=None) == []
    assert split_range_findings(frames, [], timestamp=None) == []


def test_to_dict_is_plain_json() -> None:
    finding = RangeFinding("month", 1, 5, 6, 12, 1.0, calendar="month", time_rho=0.971234)
    assert finding.to_dict() == {
        "column": "month",
        "train_min": 1.0,
        "train_max": 5.0,
        "holdout_min": 6.0,
        "holdout_max": 12.0,
        "outside_share": 1.0,
        "calendar": "month",
        "time_rho": 0.971,
    }


def test_the_step_summary_covers_the_schemas_numeric_features_only() -> None:
    from mlcycle.prep import range_summary
    from mlcycle.schema import ColumnSchema, Schema

    df = _year()
    frames = {"train": df[df["month"] <= 8], "test": df[df["month"] > 8]}
    schema = Schema(
        columns=[
            ColumnSchema(name="ts", kind="datetime", role="timestamp"),
            ColumnSchema(name="month", kind="numeric"),
            ColumnSchema(name="counter", kind="numeric", role="ignored"),  # not a feature
            ColumnSchema(name="distance", kind="numeric"),
            ColumnSchema(name="carrier", kind="categorical", categories=["AA", "UA"]),
        ]
    )
    summary = range_summary(frames, schema, "ts")
    assert [f["column"] for f in summary["out_of_range"]] == ["month"]
    assert summary["warnings"][0].startswith("feature 'month' is 1–8 in training but 9–12")
    assert range_summary(frames, schema, "ts", seasonal=["month"]) == {}
