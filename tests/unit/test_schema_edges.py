"""The data contract at its edges: bounds met exactly, one-sided ranges, kinds that accept
other kinds, the counts and words each violation carries, and the schema.yaml file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlcycle.schema import ColumnSchema, Schema, check_frame, kind_of


def _one(col: ColumnSchema, values: list[object], **kwargs: bool) -> list[tuple[str, str, int]]:
    found = check_frame(pd.DataFrame({col.name: values}), Schema(columns=[col]), **kwargs)
    return [(v.check, v.severity, v.count) for v in found]


# --- ranges --------------------------------------------------------------------------


def test_values_on_the_bounds_are_in_range() -> None:
    col = ColumnSchema(name="x", kind="numeric", min=0, max=10)
    assert _one(col, [0.0, 5.0, 10.0]) == []
    [v] = check_frame(pd.DataFrame({"x": [-1.0, 0.0, 10.0, 11.0, 12.0]}), Schema(columns=[col]))
    assert (v.check, v.severity, v.count) == ("range", "warn", 3)
    assert v.message == "column 'x': 3 value(s) outside [0.0, 10.0]"


def test_a_one_sided_range_checks_only_its_side() -> None:
    at_least = ColumnSchema(name="x", kind="numeric", min=0)
    assert _one(at_least, [0.0, 1e9]) == []
    assert _one(at_least, [-2.0, -1.0, 5.0]) == [("range", "warn", 2)]
    at_most = ColumnSchema(name="x", kind="numeric", max=10)
    assert _one(at_most, [-1e9, 10.0]) == []
    assert _one(at_most, [11.0, 5.0]) == [("range", "warn", 1)]


def test_ranges_can_be_switched_off_and_apply_to_numbers_only() -> None:
    col = ColumnSchema(name="x", kind="numeric", min=0, max=10)
    assert _one(col, [50.0], ranges=False) == []
    # A bound written on a categorical column is not a numeric range: "50" is a category.
    coded = ColumnSchema(name="x", kind="categorical", min=0, max=10, categories=["50"])
    assert _one(coded, ["50"]) == []


# --- kinds ---------------------------------------------------------------------------


def test_pandas_categories_are_the_categorical_kind() -> None:
    assert kind_of(pd.Series(["a", "b"], dtype="category")) == "categorical"
    col = ColumnSchema(name="c", kind="categorical", categories=["a", "b"])
    frame = pd.DataFrame({"c": pd.Series(["a", "b"], dtype="category")})
    assert check_frame(frame, Schema(columns=[col])) == []


def test_a_boolean_column_accepts_zero_one_numbers_but_not_text() -> None:
    col = ColumnSchema(name="b", kind="boolean")
    assert _one(col, [0, 1, 1]) == []
    [v] = check_frame(pd.DataFrame({"b": ["yes", "no"]}), Schema(columns=[col]))
    assert (v.check, v.severity) == ("type", "error")
    assert v.message.startswith("column 'b' should be boolean but is string (")
    # The other way round is not accepted: True/False where numbers are expected.
    [flags] = check_frame(
        pd.DataFrame({"n": [True, False]}), Schema(columns=[ColumnSchema(name="n", kind="numeric")])
    )
    assert (flags.check, flags.message) == (
        "type",
        "column 'n' should be numeric but is boolean (bool)",
    )


def test_text_in_a_numeric_column_held_as_pandas_categories_is_named() -> None:
    col = ColumnSchema(name="x", kind="numeric")
    frame = pd.DataFrame({"x": pd.Series(["1", "late", "2"], dtype="category")})
    [v] = check_frame(frame, Schema(columns=[col]))
    assert (v.check, v.count) == ("type", 1)
    assert "1 of 3 value(s) are not numbers, e.g. ['late']" in v.message


def test_not_numbers_name_five_examples_and_say_what_to_do() -> None:
    words = ["late", "n/a", "?", "tbd", "x", "y", "z"]
    [v] = check_frame(
        pd.DataFrame({"x": ["1", *words]}), Schema(columns=[ColumnSchema(name="x", kind="numeric")])
    )
    assert v.count == 7
    assert "e.g. ['late', 'n/a', '?', 'tbd', 'x']; " in v.message
    assert v.message.endswith(
        "a model would see them as missing, so fix them in the source "
        "(an empty cell is a missing value)"
    )


# --- roles, missing columns, counts --------------------------------------------------


def test_every_column_is_checked_after_a_skipped_or_missing_one() -> None:
    schema = Schema(
        columns=[
            ColumnSchema(name="t", kind="numeric", role="target"),
            ColumnSchema(name="a", kind="numeric"),
            ColumnSchema(name="b", kind="numeric"),
            ColumnSchema(name="c", kind="numeric", nullable=False),
        ]
    )
    frame = pd.DataFrame({"c": [1.0, None]})
    found = [(v.column, v.check) for v in check_frame(frame, schema, roles=("feature",))]
    assert found == [("a", "missing"), ("b", "missing"), ("c", "null")]
    [missing, *_] = check_frame(frame, schema, roles=("feature",))
    assert missing.message == "column 'a' (numeric, feature) is missing"


def test_an_empty_frame_says_it_has_no_rows() -> None:
    schema = Schema(columns=[ColumnSchema(name="x", kind="numeric")])
    [v] = check_frame(pd.DataFrame({"x": pd.Series([], dtype="float64")}), schema)
    assert (v.column, v.check, v.severity, v.message) == (None, "empty", "error", "no rows")


def test_nulls_duplicates_and_unseen_values_are_counted() -> None:
    col = ColumnSchema(name="x", kind="numeric", nullable=False, unique=True)
    frame = pd.DataFrame({"x": [1.0, None, None, 1.0, 1.0, 2.0]})
    found = {v.check: v for v in check_frame(frame, Schema(columns=[col]))}
    assert found["null"].count == 2
    assert found["null"].message == (
        "column 'x' has 2 null value(s) but the contract says it is never null"
    )
    # NaN repeats count as duplicates too (pandas' duplicated()): 1.0 twice, NaN once.
    assert found["unique"].count == 3
    assert found["unique"].message == "column 'x' should be unique but has 3 duplicate(s)"


@pytest.mark.parametrize("kind", ["categorical", "string"])
def test_unseen_values_name_five_examples_sorted(kind: str) -> None:
    col = ColumnSchema(name="c", kind=kind, categories=["a", "b"])
    values = ["a", "g", "f", "e", "d", "c", "b", "g", "h", None]
    [v] = check_frame(pd.DataFrame({"c": values}), Schema(columns=[col]))
    assert (v.check, v.severity, v.count) == ("category", "error", 7)
    assert v.message == (
        "column 'c': 7 value(s) not among the 2 known categories, e.g. ['c', 'd', 'e', 'f', 'g']"
    )


# --- the schema object and its file --------------------------------------------------


def _schema() -> Schema:
    return Schema(
        columns=[
            ColumnSchema(name="origin", kind="categorical", categories=["Zürich", "EWR"]),
            ColumnSchema(name="distance", kind="numeric", min=50.0, max=5000.0),
            ColumnSchema(name="delayed", kind="boolean", role="target", nullable=False),
            ColumnSchema(name="flight_id", kind="string", role="id", unique=True),
        ]
    )


def test_columns_and_names_by_role() -> None:
    schema = _schema()
    assert schema.column("distance").max == 5000.0
    with pytest.raises(KeyError, match="nope"):
        schema.column("nope")
    assert schema.names() == ["origin", "distance", "delayed", "flight_id"]
    assert schema.names("target") == ["delayed"]
    assert schema.names("feature", "id") == ["origin", "distance", "flight_id"]
    assert [c.name for c in schema.features] == ["origin", "distance"]


def test_schema_yaml_is_commented_readable_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    _schema().to_yaml(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(
        "# mlcycle data contract: inferred at first ingest, then yours to edit.\n"
        "# Every new dataset version, serving request and monitoring window is\n"
        "# checked against it. kinds: numeric boolean categorical string datetime;\n"
        "# roles: feature target id timestamp ignored.\ncolumns:\n"
    )
    assert "- Zürich" in text  # written as text, not as an escape sequence
    # Keys in the contract's order, defaults written out (a person sees every field),
    # unset bounds left out.
    assert (
        "- name: distance\n  kind: numeric\n  role: feature\n  nullable: true\n"
        "  min: 50.0\n  max: 5000.0\n  unique: false\n"
    ) in text
    assert (
        "- name: flight_id\n  kind: string\n  role: id\n  nullable: true\n  unique: true\n" in text
    )
    assert not list(tmp_path.glob("*.tmp"))  # the temp file was renamed into place
    assert Schema.from_yaml(path) == _schema()


def test_schema_yaml_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_bytes(
        "columns:\n- name: origin\n  kind: categorical\n  categories: [Zürich]\n".encode()
    )
    assert Schema.from_yaml(path).column("origin").categories == ["Zürich"]
