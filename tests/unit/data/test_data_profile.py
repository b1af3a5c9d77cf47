"""Profiles: exact statistics of one frame, and merging two windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.artifacts import ColumnProfile, Profile
from mlcycle.data import compute_profile, merge_profiles
from mlcycle.data.profile import QUANTILES
from mlcycle.errors import BadInput
from mlcycle.schema import ColumnSchema, Schema


def _schema(**kinds: str) -> Schema:
    return Schema.model_validate({"columns": [{"name": n, "kind": k} for n, k in kinds.items()]})


def _frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=shift, scale=2.0, size=rows)
    x[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(-5, 50, size=rows),
            "c": pd.Series(
                rng.choice(list("abcdefg"), size=rows, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])
            ),
            "b": rng.random(rows) < 0.3,
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), "s"),
        }
    )


SCHEMA = _schema(x="numeric", n="numeric", c="categorical", b="boolean", t="datetime")


# --- compute_profile ----------------------------------------------------------------------


def test_numeric_statistics_match_pandas_and_numpy() -> None:
    df = _frame(5000, seed=1)
    profile = compute_profile(df, SCHEMA)
    assert profile.rows == 5000
    assert [c.name for c in profile.columns] == ["x", "n", "c", "b", "t"]
    x = profile.column("x")
    values = df["x"].dropna()
    assert (x.kind, x.count, x.nulls) == ("numeric", len(values), df["x"].isna().sum())
    assert x.mean == pytest.approx(values.mean(), rel=1e-12)
    assert x.std == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert x.m2 == pytest.approx(((values - values.mean()) ** 2).sum(), rel=1e-12)
    assert (x.min, x.max) == (values.min(), values.max())
    assert list(x.quantiles) == [str(q) for q in QUANTILES] == [
        "0.01", "0.05", "0.25", "0.5", "0.75", "0.95", "0.99",
    ]  # fmt: skip
    for q, v in x.quantiles.items():
        assert v == pytest.approx(values.quantile(float(q)), rel=1e-12, abs=1e-12)
    counts, edges = np.histogram(values, bins=20, range=(values.min(), values.max()))
    assert x.histogram is not None
    np.testing.assert_allclose(x.histogram.edges, edges, rtol=0, atol=1e-12)
    assert x.histogram.counts == counts.tolist()
    n = profile.column("n")
    assert n.quantiles["0.5"] == df["n"].median()
    assert n.histogram is not None and sum(n.histogram.counts) == 5000


def test_text_and_boolean_top_and_distinct() -> None:
    df = _frame(3000, seed=2)
    df.loc[:9, "c"] = None
    profile = compute_profile(df, SCHEMA)
    c = profile.column("c")
    expected = df["c"].value_counts()
    assert c.top == {str(k): int(v) for k, v in expected.items()}
    assert list(c.top.values()) == sorted(c.top.values(), reverse=True)
    assert (c.count, c.nulls, c.distinct) == (2990, 10, 7)
    assert c.mean is None and c.histogram is None
    b = profile.column("b")
    assert b.top == {"False": int((~df["b"]).sum()), "True": int(df["b"].sum())}
    assert (b.distinct, b.nulls) == (2, 0)


def test_top_keeps_twenty_and_ties_in_first_seen_order() -> None:
    values = [f"v{i:02d}" for i in range(30)] * 2 + ["z"] * 5
    df = pd.DataFrame({"c": values[::-1]})
    c = compute_profile(df, _schema(c="string")).column("c")
    assert c.distinct == 31 and len(c.top) == 20
    assert next(iter(c.top.items())) == ("z", 5)
    # Equal counts: the order the values first appear in (the frame is reversed).
    assert list(c.top)[1:4] == ["v29", "v28", "v27"]


def test_object_text_with_missing_values() -> None:
    df = pd.DataFrame({"c": pd.Series(["a", None, np.nan, "b", "a"], dtype=object)})
    c = compute_profile(df, _schema(c="categorical")).column("c")
    assert (c.count, c.nulls, c.distinct, c.top) == (3, 2, 2, {"a": 2, "b": 1})


def test_datetime_as_epoch_seconds() -> None:
    naive = pd.to_datetime(pd.Series(["2024-01-01", None, "2024-01-02"]))
    aware = pd.Series(pd.to_datetime(["2024-01-01T00:00:00+01:00", "2024-01-01T12:00:00+01:00"]))
    profile = compute_profile(pd.DataFrame({"t": naive}), _schema(t="datetime"))
    t = profile.column("t")
    assert (t.count, t.nulls, t.min, t.max) == (2, 1, 1704067200.0, 1704153600.0)
    t2 = compute_profile(pd.DataFrame({"t": aware}), _schema(t="datetime")).column("t")
    assert (t2.min, t2.max) == (1704063600.0, 1704106800.0)


def test_infinity_counts_as_missing_and_all_null_column() -> None:
    df = pd.DataFrame({"x": [1.0, np.inf, 3.0, np.nan], "e": [np.nan] * 4})
    profile = compute_profile(df, _schema(x="numeric", e="numeric"))
    x = profile.column("x")
    assert (x.count, x.nulls, x.mean, x.min, x.max) == (2, 2, 2.0, 1.0, 3.0)
    e = profile.column("e")
    assert (e.count, e.nulls, e.mean, e.m2, e.histogram, e.quantiles) == (
        0,
        4,
        None,
        None,
        None,
        {},
    )


def test_constant_column_histogram_is_centred() -> None:
    x = compute_profile(pd.DataFrame({"x": [7.0] * 5}), _schema(x="numeric")).column("x")
    assert x.histogram is not None
    assert (x.histogram.edges[0], x.histogram.edges[-1]) == (6.5, 7.5)
    assert sum(x.histogram.counts) == 5 and x.m2 == 0.0 and x.quantiles["0.99"] == 7.0


def test_nullable_integer_and_text_numbers() -> None:
    df = pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"), "s": ["1", "x", "3"]})
    profile = compute_profile(df, _schema(i="numeric", s="numeric"))
    assert (profile.column("i").count, profile.column("i").mean) == (2, 2.0)
    # A frame that breaks the contract still profiles (validation reports it).
    assert (profile.column("s").count, profile.column("s").mean) == (2, 2.0)


def test_only_schema_columns_in_schema_order() -> None:
    df = pd.DataFrame({"b": [1, 2], "a": ["x", "y"], "extra": [0, 0]})
    schema = _schema(a="categorical", missing="numeric", b="numeric")
    assert [c.name for c in compute_profile(df, schema).columns] == ["a", "b"]


def test_profile_is_json_serialisable() -> None:
    profile = compute_profile(_frame(100, seed=3), SCHEMA)
    assert Profile.model_validate_json(profile.model_dump_json()) == profile


def test_duplicate_column_is_bad_input() -> None:
    df = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(BadInput, match="more than once"):
        compute_profile(df, _schema(a="numeric"))


def test_profile_of_336k_rows_counts_distinct_exactly() -> None:
    rows = 336_776
    rng = np.random.default_rng(0)
    data: dict[str, object] = {}
    for i in range(14):
        column = rng.normal(size=rows) if i % 2 else rng.integers(0, 2400, size=rows)
        data[f"num{i}"] = column
    for i, distinct in enumerate((16, 4000, 3, 105, 50)):
        data[f"txt{i}"] = pd.Series(rng.choice([f"v{j}" for j in range(distinct)], size=rows))
    data["when"] = pd.date_range("2013-01-01", periods=rows, freq="min")
    df = pd.DataFrame(data)
    schema = Schema(
        columns=[
            ColumnSchema(
                name=name,
                kind="numeric"
                if name.startswith("num")
                else "datetime"
                if name == "when"
                else "categorical",
            )
            for name in df.columns
        ]
    )
    profile = compute_profile(df, schema)
    assert profile.column("txt1").distinct == 4000


# --- merge_profiles --------------------------------------------------------------------------


def test_merge_of_halves_equals_profile_of_the_whole() -> None:
    df = _frame(20_000, seed=4)
    first, second = df.iloc[:7000], df.iloc[7000:]
    merged = merge_profiles(compute_profile(first, SCHEMA), compute_profile(second, SCHEMA))
    whole = compute_profile(df, SCHEMA)
    assert merged.rows == whole.rows == 20_000
    for name in ("x", "n"):
        m, w = merged.column(name), whole.column(name)
        assert (m.count, m.nulls, m.min, m.max) == (w.count, w.nulls, w.min, w.max)
        assert m.mean == pytest.approx(w.mean, rel=1e-9, abs=1e-12)
        assert m.std == pytest.approx(w.std, rel=1e-9)
        assert m.m2 == pytest.approx(w.m2, rel=1e-9)
        assert m.histogram is not None and w.histogram is not None
        assert sum(m.histogram.counts) == m.count
        assert w.max is not None and w.min is not None
        width = (w.max - w.min) / 20
        for q in QUANTILES:
            # Same distribution in both halves: close to exact.
            assert m.quantiles[str(q)] == pytest.approx(w.quantiles[str(q)], abs=0.2 * width)
    c = merged.column("c")
    assert c.top == whole.column("c").top and c.distinct == 7
    assert merged.column("b").top == whole.column("b").top
    t = merged.column("t")
    assert (t.min, t.max, t.count) == (whole.column("t").min, whole.column("t").max, 20_000)


def test_merge_of_different_windows() -> None:
    a_df, b_df = _frame(8000, seed=5), _frame(12_000, seed=6, shift=6.0)
    merged = merge_profiles(compute_profile(a_df, SCHEMA), compute_profile(b_df, SCHEMA))
    whole = compute_profile(pd.concat([a_df, b_df], ignore_index=True), SCHEMA)
    m, w = merged.column("x"), whole.column("x")
    assert m.mean == pytest.approx(w.mean, rel=1e-9)
    assert m.std == pytest.approx(w.std, rel=1e-9)
    assert (m.min, m.max) == (w.min, w.max)
    # Histograms with different edges are re-binned into the merged range.
    assert m.histogram is not None and w.histogram is not None
    assert m.histogram.edges == w.histogram.edges
    assert sum(m.histogram.counts) == w.count
    assert np.abs(np.subtract(m.histogram.counts, w.histogram.counts)).sum() < 0.05 * w.count
    assert w.max is not None and w.min is not None
    width = (w.max - w.min) / 20
    for q in QUANTILES:
        assert m.quantiles[str(q)] == pytest.approx(w.quantiles[str(q)], abs=0.25 * width)


def test_merge_with_equal_edges_adds_histograms_exactly() -> None:
    a_df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 10.0]})
    b_df = pd.DataFrame({"x": [0.0, 5.0, 5.5, 10.0]})
    schema = _schema(x="numeric")
    merged = merge_profiles(compute_profile(a_df, schema), compute_profile(b_df, schema))
    whole = compute_profile(pd.concat([a_df, b_df]), schema)
    assert merged.column("x").histogram == whole.column("x").histogram


def test_merge_with_an_empty_window_is_exact() -> None:
    df = _frame(1000, seed=7)
    full = compute_profile(df, SCHEMA)
    empty = compute_profile(df.iloc[:0], SCHEMA)
    merged = merge_profiles(full, empty)
    assert merged == full
    assert merge_profiles(empty, full) == full


def test_merge_is_associative_for_moments() -> None:
    parts = [_frame(3000, seed=s, shift=s) for s in (8, 9, 10)]
    profiles = [compute_profile(p, SCHEMA) for p in parts]
    left = merge_profiles(merge_profiles(profiles[0], profiles[1]), profiles[2])
    right = merge_profiles(profiles[0], merge_profiles(profiles[1], profiles[2]))
    whole = compute_profile(pd.concat(parts, ignore_index=True), SCHEMA)
    for merged in (left, right):
        assert merged.column("x").mean == pytest.approx(whole.column("x").mean, rel=1e-9)
        assert merged.column("x").std == pytest.approx(whole.column("x").std, rel=1e-9)
        assert merged.column("n").count == whole.column("n").count


def test_merge_top_counts_and_distinct_bounds() -> None:
    a = compute_profile(pd.DataFrame({"c": ["a"] * 5 + ["b"] * 2}), _schema(c="categorical"))
    b = compute_profile(pd.DataFrame({"c": ["b"] * 4 + ["c"]}), _schema(c="categorical"))
    merged = merge_profiles(a, b).column("c")
    assert merged.top == {"b": 6, "a": 5, "c": 1}
    assert merged.distinct == 3  # both tops complete: exact
    many_a = compute_profile(pd.DataFrame({"c": [f"a{i}" for i in range(40)]}), _schema(c="string"))
    many_b = compute_profile(pd.DataFrame({"c": [f"b{i}" for i in range(30)]}), _schema(c="string"))
    big = merge_profiles(many_a, many_b).column("c")
    assert len(big.top) == 20
    assert big.distinct is not None and 40 <= big.distinct <= 70  # a lower bound


def test_merge_column_missing_from_one_window_counts_as_null() -> None:
    a = compute_profile(
        pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]}), _schema(x="numeric", c="categorical")
    )
    b = compute_profile(pd.DataFrame({"x": [3.0]}), _schema(x="numeric", c="categorical"))
    merged = merge_profiles(a, b)
    assert merged.column("c").count == 2 and merged.column("c").nulls == 1
    assert merged.column("x").mean == pytest.approx(2.0)
    back = merge_profiles(b, a)
    assert [c.name for c in back.columns] == ["x", "c"]
    assert back.column("c").nulls == 1


def test_merge_kind_mismatch() -> None:
    a = Profile(rows=1, columns=[ColumnProfile(name="x", kind="numeric", count=1, nulls=0)])
    b = Profile(rows=1, columns=[ColumnProfile(name="x", kind="categorical", count=1, nulls=0)])
    with pytest.raises(BadInput, match="'x'"):
        merge_profiles(a, b)
