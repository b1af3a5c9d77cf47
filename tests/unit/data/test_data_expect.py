"""Declared expectations, one check at a time, and the profile distance they use."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import compute_profile
from mlcycle.data.compare import column_distance, row_changes, schema_changes
from mlcycle.data.expect import check_expectations
from mlcycle.errors import BadInput
from mlcycle.schema import ColumnSchema, Schema
from mlcycle.spec import Expectation, Spec

SCHEMA = Schema(
    columns=[
        ColumnSchema(name="x", kind="numeric"),
        ColumnSchema(name="c", kind="categorical"),
        ColumnSchema(name="t", kind="datetime", role="timestamp"),
    ]
)


def _frame(n: int = 200, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(loc=shift, size=n),
            "c": rng.choice(["a", "b", "c"], size=n),
            "t": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        }
    )


def _check(df: pd.DataFrame, previous: pd.DataFrame | None = None, **fields: object) -> list:
    exp = Expectation.model_validate(fields)
    prev = compute_profile(previous, SCHEMA) if previous is not None else None
    now = datetime(2024, 1, 20, tzinfo=UTC)
    return check_expectations(df, [exp], compute_profile(df, SCHEMA), prev, now=now)


def test_row_count_bounds() -> None:
    df = _frame(50)
    assert _check(df, check="row_count", min=10, max=100) == []
    found = _check(df, check="row_count", min=100)
    assert (
        found[0].check == "row_count"
        and found[0].severity == "error"
        and "50 rows" in found[0].message
    )


def test_null_rate_with_warn_severity() -> None:
    df = _frame(100)
    df.loc[:29, "x"] = None
    found = _check(df, check="null_rate", column="x", max=0.1, severity="warn")
    assert [(v.check, v.severity, v.count) for v in found] == [("null_rate", "warn", 30)]
    assert "30.0%" in found[0].message
    assert _check(df, check="null_rate", column="x", max=0.5) == []


def test_value_range_counts_values_outside_and_non_numbers() -> None:
    df = pd.DataFrame({"x": [1.0, 5.0, 11.0, -3.0]})
    found = _check(df, check="range", column="x", min=0, max=10)
    assert found[0].count == 2
    text = pd.DataFrame({"x": ["1", "oops", "2"]})
    found = _check(text, check="range", column="x", min=0)
    assert found[0].count == 1 and "not numbers" in found[0].message


def test_allowed_values_and_uniqueness() -> None:
    df = pd.DataFrame({"c": ["a", "b", "z", "z", None]})
    found = _check(df, check="allowed", column="c", values=["a", "b"])
    assert found[0].count == 2 and "'z'" in found[0].message
    found = _check(df, check="unique", column="c")
    assert found[0].check == "unique" and found[0].count == 1
    assert _check(pd.DataFrame({"c": [1, 2, None, None]}), check="unique", column="c") == []


def test_freshness_is_judged_against_now() -> None:
    df = _frame(24)  # newest 2024-01-01 23:00, "now" is 2024-01-20
    found = _check(df, check="freshness", column="t", max_age_days=7)
    assert found and "days old" in found[0].message
    assert _check(df, check="freshness", column="t", max_age_days=30) == []


def test_distribution_against_the_previous_version() -> None:
    before = _frame(2000, seed=1)
    assert _check(_frame(2000, seed=2), before, check="distribution", threshold=0.1) == []
    moved = _frame(2000, shift=3.0, seed=2)
    found = _check(moved, before, check="distribution", threshold=0.1, severity="warn")
    assert [v.column for v in found] == ["x"] and found[0].severity == "warn"
    assert _check(moved, None, check="distribution") == []  # a first version has no reference


def test_an_expectation_on_a_missing_column_is_reported() -> None:
    found = _check(_frame(10), check="null_rate", column="nope", max=0.1)
    assert found[0].check == "missing" and "nope" in found[0].message


def test_bad_expectations_in_the_spec_name_the_key() -> None:
    base = {
        "project": "p",
        "problem": {"task": "binary", "target": "y"},
        "data": {"source": {"path": "d.csv"}},
    }
    cases = [
        ({"check": "allowed", "column": "c"}, "needs 'values'"),
        ({"check": "null_rate", "max": 0.1}, "needs 'column'"),
        ({"check": "range", "column": "x"}, "needs 'min' and/or 'max'"),
        ({"check": "freshness", "column": "t"}, "max_age_days"),
        ({"check": "typo"}, "data.expectations.0.check"),
    ]
    for exp, message in cases:
        with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
            Spec.from_dict(base | {"data": base["data"] | {"expectations": [exp]}})


def test_column_distance_is_zero_for_the_same_data_and_grows_with_a_shift() -> None:
    a = compute_profile(_frame(3000, seed=1), SCHEMA)
    b = compute_profile(_frame(3000, shift=1.0, seed=2), SCHEMA)
    same = column_distance(a.column("x"), a.column("x"))
    assert same == pytest.approx(0.0, abs=1e-9)
    assert 0.2 < (column_distance(a.column("x"), b.column("x")) or 0) < 1
    assert (column_distance(a.column("c"), b.column("c")) or 1) < 0.05
    assert column_distance(a.column("t"), b.column("t")) is None


def test_row_and_schema_changes() -> None:
    old = pd.DataFrame({"id": [1, 2, 3], "v": [1, 2, 3]})
    new = pd.DataFrame({"id": [2, 3, 4, 5], "v": [2, 3, 4, 5]})
    assert row_changes(old, new, "id") == {"added": 2, "removed": 1, "kept": 2}
    assert row_changes(old, new) == {"added": 2, "removed": 1, "kept": 2}
    s1 = Schema(
        columns=[ColumnSchema(name="a", kind="numeric"), ColumnSchema(name="b", kind="string")]
    )
    s2 = Schema(
        columns=[ColumnSchema(name="a", kind="string"), ColumnSchema(name="c", kind="numeric")]
    )
    changes = schema_changes(s1, s2)
    assert "+ column 'c' (numeric)" in changes and "- column 'b' (string)" in changes
    assert "~ 'a' kind numeric → string" in changes


def test_data_changes_name_retyped_added_and_removed_columns() -> None:
    from mlcycle.data.compare import data_changes

    old = pd.DataFrame({"a": [1.0], "gone": [1]})
    new = pd.DataFrame({"a": ["1.0"], "b": [2]})
    assert data_changes(old, new) == [
        "+ data column 'b' (numeric)",
        "- data column 'gone' (numeric)",
        "~ data column 'a' numeric → string",
    ]
