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
