"""The shared data contract check."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle.schema import ColumnSchema, Schema, check_frame, kind_of

SCHEMA = Schema(
    columns=[
        ColumnSchema(name="x", kind="numeric", nullable=False, min=0, max=10),
        ColumnSchema(name="c", kind="categorical", categories=["a", "b"]),
        ColumnSchema(name="id", kind="numeric", role="id", unique=True, nullable=False),
        ColumnSchema(name="y", kind="boolean", role="target", nullable=False),
    ]
)


def _frame(**overrides: object) -> pd.DataFrame:
    base = {"x": [1.0, 2.0], "c": ["a", "b"], "id": [1, 2], "y": [True, False]}
    base.update(overrides)  # type: ignore[arg-type]
    return pd.DataFrame(base)


def test_a_conforming_frame_has_no_violations() -> None:
    assert check_frame(_frame(), SCHEMA) == []


def test_each_kind_of_violation() -> None:
    df = _frame(x=[np.nan, 20.0], c=["a", "zzz"], id=[1, 1])
    checks = {(v.column, v.check, v.severity) for v in check_frame(df, SCHEMA)}
    assert ("x", "null", "error") in checks
    assert ("x", "range", "warn") in checks
    assert ("c", "category", "error") in checks
    assert ("id", "unique", "error") in checks


def test_missing_and_retyped_columns() -> None:
    df = _frame(x=["1", "2"]).drop(columns=["c"])
    found = {(v.column, v.check) for v in check_frame(df, SCHEMA)}
    assert ("c", "missing") in found
    assert ("x", "type") in found


def test_roles_and_unseen_policy() -> None:
    df = _frame(c=["a", "new"]).drop(columns=["y", "id"])
    only_features = check_frame(df, SCHEMA, roles=("feature",), unseen_is_error=False)
    assert [(v.check, v.severity) for v in only_features] == [("category", "warn")]


def test_empty_frame_is_an_error() -> None:
    assert any(v.check == "empty" for v in check_frame(_frame().iloc[:0], SCHEMA))


def test_kind_of() -> None:
    assert kind_of(pd.Series([1, 2])) == "numeric"
    assert kind_of(pd.Series([True])) == "boolean"
    assert kind_of(pd.Series(["a"])) == "string"
    assert kind_of(pd.Series(pd.to_datetime(["2020-01-01"]))) == "datetime"


def test_numbers_in_a_datetime_or_string_column_are_a_type_error() -> None:
    # Only boolean accepts numbers (0/1 from CSV/JSON); a number where a date or a
    # text is expected must not slip through as "compatible".
    schema = Schema(
        columns=[
            ColumnSchema(name="when", kind="datetime"),
            ColumnSchema(name="name", kind="string"),
            ColumnSchema(name="c", kind="categorical", categories=["a", "b"]),
        ]
    )
    numbers = pd.DataFrame({"when": [1.0, 2.0], "name": [3, 4], "c": [5, 6]})
    found = {(v.column, v.check, v.severity) for v in check_frame(numbers, schema)}
    assert found == {("when", "type", "error"), ("name", "type", "error"), ("c", "type", "error")}
    fine = pd.DataFrame(
        {"when": pd.to_datetime(["2020-01-01", "2020-01-02"]), "name": ["p", "q"], "c": ["a", "b"]}
    )
    assert check_frame(fine, schema) == []


def test_text_in_a_numeric_column_is_an_error_with_count_and_examples() -> None:
    frame = _frame(x=["1", "late"])
    found = [v for v in check_frame(frame, SCHEMA) if v.column == "x"]
    assert [(v.check, v.severity, v.count) for v in found] == [("type", "error", 1)]
    assert "1 of 2 value(s) are not numbers, e.g. ['late']" in found[0].message

    many = pd.DataFrame({"x": ["1", "late", "n/a", "late", None, "3"]})
    schema = Schema(columns=[ColumnSchema(name="x", kind="numeric")])
    (v,) = check_frame(many, schema)
    assert v.count == 3 and "3 of 5 value(s)" in v.message and "['late', 'n/a']" in v.message
