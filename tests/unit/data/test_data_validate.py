"""Validating a frame against its contract."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle.data import infer_schema, validate_frame
from mlcycle.schema import Schema
from mlcycle.spec import Features, Problem

PROBLEM = Problem(task="binary", target="y", id_column="id")


def _frame(rows: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "x": rng.normal(size=rows),
            "c": rng.choice(["a", "b"], size=rows),
            "note": [f"text {i}" for i in range(rows)],
            "y": np.r_[[0, 1], rng.integers(0, 2, size=rows - 2)],
        }
    )


def _schema() -> Schema:
    return infer_schema(_frame(), PROBLEM, Features(max_categories=50))


def _found(df: pd.DataFrame, schema: Schema) -> list[tuple[str | None, str, str]]:
    return [(v.column, v.check, v.severity) for v in validate_frame(df, schema).violations]


def test_inferred_schema_accepts_its_own_frame() -> None:
    df = _frame()
    report = validate_frame(df, infer_schema(df, PROBLEM, Features(max_categories=50)))
    assert report.ok and report.violations == [] and report.rows == 100


def test_missing_column_and_extra_column() -> None:
    df = _frame().drop(columns=["x"]).assign(new=1)
    report = validate_frame(df, _schema())
    assert not report.ok
    assert _found(df, _schema()) == [("x", "missing", "error"), ("new", "extra", "warn")]


def test_missing_ignored_column_is_fine() -> None:
    assert validate_frame(_frame().drop(columns=["note"]), _schema()).ok


def test_entirely_null_feature_is_one_error() -> None:
    df = _frame()
    df["x"] = np.nan
    violations = validate_frame(df, _schema()).violations
    assert [(v.column, v.check, v.severity) for v in violations] == [("x", "null", "error")]
    assert "entirely null" in violations[0].message and violations[0].count == 100


def test_entirely_null_ignored_column_is_fine() -> None:
    df = _frame()
    df["note"] = None
    assert validate_frame(df, _schema()).ok


def test_null_target_is_an_error_once() -> None:
    df = _frame()
    df.loc[[3, 7], "y"] = np.nan
    schema = _schema()
    assert schema.column("y").nullable is False
    violations = validate_frame(df, schema).violations
    assert [(v.column, v.check, v.count) for v in violations] == [("y", "null", 2)]
    # Even if the contract were edited to allow nulls, the target may not have any.
    schema.column("y").nullable = True
    violations = validate_frame(df, schema).violations
    assert [(v.column, v.check, v.severity, v.count) for v in violations] == [
        ("y", "null", "error", 2)
    ]
    assert "target" in violations[0].message


def test_every_violation_is_reported() -> None:
    df = _frame()
    df.loc[0, "c"] = "zebra"  # unseen category
    df.loc[1, "x"] = 1e6  # out of range: a warning
    df.loc[2, "id"] = 3  # duplicate of row 3
    df = df.assign(extra="e")
    found = _found(df, _schema())
    assert ("c", "category", "error") in found
    assert ("x", "range", "warn") in found
    assert ("id", "unique", "error") in found
    assert ("extra", "extra", "warn") in found
    assert len(found) == 4


def test_wrong_kind_is_an_error() -> None:
    df = _frame()
    df["x"] = df["x"].astype(str)
    assert ("x", "type", "error") in _found(df, _schema())


def test_empty_frame() -> None:
    df = _frame().iloc[:0]
    report = validate_frame(df, _schema())
    assert not report.ok and report.rows == 0
    assert [v.check for v in report.errors] == ["empty"]


def test_duplicate_column_names_do_not_crash() -> None:
    df = _frame()
    doubled = pd.concat([df, df[["x"]]], axis=1)
    report = validate_frame(doubled, _schema())
    assert not report.ok
    assert [(v.column, v.severity) for v in report.errors] == [("x", "error")]
    assert "appears 2 times" in report.errors[0].message


def test_numbers_held_as_text_become_numbers_when_every_value_parses() -> None:
    from mlcycle.data.build import numbers_as_numbers
    from mlcycle.schema import ColumnSchema, Schema

    schema = Schema(
        columns=[ColumnSchema(name="a", kind="numeric"), ColumnSchema(name="b", kind="numeric")]
    )
    df = pd.DataFrame({"a": ["1", "2.5", None], "b": ["1", "late", None]})
    out = numbers_as_numbers(df, schema)
    assert out["a"].tolist()[:2] == [1.0, 2.5] and pd.isna(out["a"].iloc[2])
    # A column with a value that is not a number stays text, for validation to name it.
    assert out["b"].tolist()[:2] == ["1", "late"]
    assert df["a"].tolist()[0] == "1"  # the input frame is not changed
