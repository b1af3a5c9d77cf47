"""Inferring the data contract from a frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import infer_schema, parse_timestamp
from mlcycle.errors import BadInput
from mlcycle.spec import Features, Problem


def _frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    x[3] = np.nan
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(rows)],
            "when": pd.date_range("2024-01-01", periods=rows, freq="h"),
            "x": x,
            "k": rng.integers(1, 13, size=rows),
            "color": rng.choice(["red", "green", "blue"], size=rows),
            "note": [f"free text {i}" for i in range(rows)],
            "flag": rng.integers(0, 2, size=rows).astype(bool),
            "y": np.r_[[0, 1], rng.integers(0, 2, size=rows - 2)],
        }
    )


BINARY = Problem(task="binary", target="y", id_column="id", timestamp_column="when")
# Explicit, so the tests do not depend on the spec's default.
FEW = 50
FEATURES = Features(max_categories=FEW)


def test_kinds_roles_and_constraints() -> None:
    df = _frame()
    schema = infer_schema(df, BINARY, FEATURES)
    assert schema.names() == list(df.columns)
    by = {c.name: c for c in schema.columns}
    assert (by["id"].kind, by["id"].role, by["id"].unique) == ("string", "id", True)
    assert by["id"].categories is None
    assert (by["when"].kind, by["when"].role) == ("datetime", "timestamp")
    assert (by["x"].kind, by["x"].role, by["x"].nullable) == ("numeric", "feature", True)
    assert by["x"].min == pytest.approx(np.nanmin(df["x"]))
    assert by["x"].max == pytest.approx(np.nanmax(df["x"]))
    # A low-cardinality integer stays numeric.
    assert (by["k"].kind, by["k"].min, by["k"].max) == ("numeric", 1.0, 12.0)
    assert by["k"].nullable is False
    assert by["color"].kind == "categorical"
    assert by["color"].categories == ["blue", "green", "red"]
    # Free text is not a feature unless asked for.
    assert (by["note"].kind, by["note"].role) == ("string", "ignored")
    assert (by["flag"].kind, by["flag"].role) == ("boolean", "feature")
    assert (by["y"].kind, by["y"].role) == ("numeric", "target")
    assert [c.name for c in schema.features] == ["x", "k", "color", "flag"]
    assert all(not c.unique for c in schema.columns if c.name != "id")


def test_max_categories_boundary() -> None:
    df = pd.DataFrame(
        {
            "five": [f"v{i % 5}" for i in range(20)],
            "six": [f"w{i % 6}" for i in range(20)],
            "y": [0, 1] * 10,
        }
    )
    schema = infer_schema(df, Problem(task="binary", target="y"), Features(max_categories=5))
    assert schema.column("five").kind == "categorical"
    assert schema.column("five").categories == [f"v{i}" for i in range(5)]
    assert (schema.column("six").kind, schema.column("six").role) == ("string", "ignored")
    # Included by name, a high-cardinality text column stays a feature.
    included = infer_schema(
        df, Problem(task="binary", target="y"), Features(max_categories=5, include=["six"])
    )
    assert (included.column("six").kind, included.column("six").role) == ("string", "feature")
    assert included.column("five").role == "ignored"


def test_categories_are_sorted_strings_and_ignore_nulls() -> None:
    df = pd.DataFrame({"c": pd.Series([3, "a", None, 3, "b"], dtype=object), "y": [0, 1, 0, 1, 0]})
    schema = infer_schema(df, Problem(task="binary", target="y"), FEATURES)
    assert schema.column("c").categories == ["3", "a", "b"]
    assert schema.column("c").nullable is True


def test_pandas_categorical_uses_declared_categories() -> None:
    c = pd.Categorical(["lo", "hi", "lo", "hi"], categories=["lo", "mid", "hi"])
    df = pd.DataFrame({"c": c, "y": [0.5, 1.5, 2.5, 3.5]})
    schema = infer_schema(df, Problem(task="regression", target="y"), FEATURES)
    assert schema.column("c").kind == "categorical"
    assert schema.column("c").categories == ["hi", "lo", "mid"]


def test_string_target_becomes_categorical_with_classes() -> None:
    df = pd.DataFrame({"x": range(6), "y": ["a", "b", "c", "a", "b", "c"]})
    schema = infer_schema(df, Problem(task="multiclass", target="y"), FEATURES)
    assert schema.column("y").kind == "categorical"
    assert schema.column("y").categories == ["a", "b", "c"]


def test_exclude_and_include() -> None:
    df = _frame()
    excluded = infer_schema(df, BINARY, Features(max_categories=FEW, exclude=["k", "color"]))
    assert excluded.column("k").role == "ignored"
    assert excluded.column("color").role == "ignored"
    assert [c.name for c in excluded.features] == ["x", "flag"]
    included = infer_schema(df, BINARY, Features(max_categories=FEW, include=["x", "note"]))
    assert [c.name for c in included.features] == ["x", "note"]
    assert included.column("color").role == "ignored"
    assert included.column("y").role == "target"


def test_numeric_range_ignores_infinity() -> None:
    df = pd.DataFrame({"x": [1.0, np.inf, -np.inf, 5.0], "y": [1.0, 2.0, 3.0, 4.0]})
    schema = infer_schema(df, Problem(task="regression", target="y"), FEATURES)
    assert (schema.column("x").min, schema.column("x").max) == (1.0, 5.0)


def test_all_null_numeric_has_no_range() -> None:
    df = pd.DataFrame({"x": [np.nan, np.nan], "z": [1, 2], "y": [1.0, 2.0]})
    schema = infer_schema(df, Problem(task="regression", target="y"), FEATURES)
    assert schema.column("x").min is None and schema.column("x").nullable


def test_timestamp_text_that_parses_is_datetime() -> None:
    df = pd.DataFrame(
        {"t": ["2024-01-01T10:00:00Z", "2024-01-02T10:00:00Z"], "x": [1, 2], "y": [0, 1]}
    )
    problem = Problem(task="binary", target="y", timestamp_column="t")
    assert infer_schema(df, problem, FEATURES).column("t").kind == "datetime"
    converted = parse_timestamp(df, "t")
    assert pd.api.types.is_datetime64_any_dtype(converted["t"])
    assert df["t"].dtype != converted["t"].dtype  # the input frame is not changed
    assert converted["t"].iloc[1] - converted["t"].iloc[0] == pd.Timedelta(days=1)


def test_numeric_timestamp_is_kept() -> None:
    df = pd.DataFrame({"t": [1, 2, 3], "x": [1, 2, 3], "y": [0, 1, 0]})
    problem = Problem(task="binary", target="y", timestamp_column="t")
    assert infer_schema(df, problem, FEATURES).column("t").kind == "numeric"
    assert parse_timestamp(df, "t") is df


def test_timestamp_text_that_does_not_parse() -> None:
    df = pd.DataFrame({"t": ["soon", "later"], "x": [1, 2], "y": [0, 1]})
    problem = Problem(task="binary", target="y", timestamp_column="t")
    with pytest.raises(BadInput) as err:
        infer_schema(df, problem, FEATURES)
    assert "'t'" in err.value.what and "soon" in err.value.why
    with pytest.raises(BadInput):
        parse_timestamp(df, "t")


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("problem", "features", "key", "name"),
    [
        (Problem(task="binary", target="delay"), FEATURES, "problem.target", "delay"),
        (
            Problem(task="binary", target="y", id_column="row"),
            FEATURES,
            "problem.id_column",
            "row",
        ),
        (
            Problem(task="binary", target="y", timestamp_column="ts"),
            FEATURES,
            "problem.timestamp_column",
            "ts",
        ),
        (
            Problem(task="binary", target="y"),
            Features(max_categories=FEW, include=["x", "colour"]),
            "data.features.include",
            "colour",
        ),
        (
            Problem(task="binary", target="y"),
            Features(max_categories=FEW, exclude=["kk"]),
            "data.features.exclude",
            "kk",
        ),
    ],
)
def test_unknown_column_names_it_and_lists_columns(
    problem: Problem, features: Features, key: str, name: str
) -> None:
    with pytest.raises(BadInput) as err:
        infer_schema(_frame(), problem, features)
    assert f"'{name}'" in err.value.what
    assert key in err.value.why
    assert "id, when, x, k, color, note, flag, y" in err.value.why


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_single_class_target(task: str) -> None:
    df = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "a", None]})
    with pytest.raises(BadInput) as err:
        infer_schema(df, Problem.model_validate({"task": task, "target": "y"}), FEATURES)
    assert "'y'" in err.value.what and "1 distinct" in err.value.what


def test_binary_target_with_three_classes() -> None:
    df = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    with pytest.raises(BadInput, match="3 distinct values"):
        infer_schema(df, Problem(task="binary", target="y"), FEATURES)


def test_regression_target_must_be_numeric_and_vary() -> None:
    text = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]})
    with pytest.raises(BadInput, match="not numeric"):
        infer_schema(text, Problem(task="regression", target="y"), FEATURES)
    constant = pd.DataFrame({"x": [1, 2, 3], "y": [1.0, 1.0, 1.0]})
    with pytest.raises(BadInput, match="1 distinct"):
        infer_schema(constant, Problem(task="regression", target="y"), FEATURES)


def test_no_features_left() -> None:
    df = pd.DataFrame({"note": [f"t{i}" for i in range(100)], "y": [0, 1] * 50})
    with pytest.raises(BadInput) as err:
        infer_schema(df, Problem(task="binary", target="y"), FEATURES)
    assert "no feature" in err.value.what
    assert "note (string, ignored)" in err.value.why
    with pytest.raises(BadInput, match="no feature"):
        infer_schema(
            _frame(), BINARY, Features(max_categories=FEW, exclude=["x", "k", "color", "flag"])
        )


def test_target_cannot_be_an_included_feature() -> None:
    with pytest.raises(BadInput) as err:
        infer_schema(_frame(), BINARY, Features(max_categories=FEW, include=["x", "y"]))
    assert "problem.target" in err.value.what


def test_duplicate_column_names() -> None:
    df = pd.DataFrame([[1, 2, 0], [3, 4, 1]], columns=["a", "a", "y"])
    with pytest.raises(BadInput, match="more than once"):
        infer_schema(df, Problem(task="binary", target="y"), FEATURES)


def test_parse_timestamp_gives_utc_for_mixed_offsets() -> None:
    df = pd.DataFrame({"t": ["2024-01-01T10:00:00+01:00", "2024-01-01T10:00:00Z"]})
    parsed = parse_timestamp(df, "t")["t"]
    assert str(parsed.dt.tz) == "UTC"
    assert (parsed.iloc[1] - parsed.iloc[0]) == pd.Timedelta(hours=1)


def test_a_number_column_with_a_few_words_is_numeric_and_nullable() -> None:
    # 2,900 numbers as text, then "late" in the last 100 rows (3.3 %): numeric.
    values = [str(v) for v in np.arange(2900) % 140 - 20] + ["late"] * 100
    df = pd.DataFrame({"delay": values, "id": [f"r{i}" for i in range(3000)], "y": [0, 1] * 1500})
    col = infer_schema(df, Problem(task="binary", target="y", id_column="id"), FEATURES).column(
        "delay"
    )
    assert (col.kind, col.categories, col.nullable) == ("numeric", None, True)
    assert (col.min, col.max) == (-20.0, 119.0)


def test_the_numeric_rule_is_at_least_95_percent_of_non_null_values() -> None:
    from mlcycle.data.infer import NUMERIC_SHARE, mostly_numeric

    assert NUMERIC_SHARE == 0.95
    assert mostly_numeric(pd.Series(["1"] * 95 + ["x"] * 5 + [None] * 50))
    assert not mostly_numeric(pd.Series(["1"] * 94 + ["x"] * 6))
    assert not mostly_numeric(pd.Series(["EWR", "JFK", "LGA", "1"]))
    assert not mostly_numeric(pd.Series([None, None], dtype=object))
    assert not mostly_numeric(pd.Series(["1", "2"], dtype="category"))


def test_text_ids_that_look_like_numbers_stay_ids() -> None:
    df = pd.DataFrame(
        {"id": [str(i) for i in range(99)] + ["A-1"], "x": range(100), "y": [0, 1] * 50}
    )
    col = infer_schema(df, Problem(task="binary", target="y", id_column="id"), FEATURES).column(
        "id"
    )
    assert col.kind == "string" and col.role == "id"
