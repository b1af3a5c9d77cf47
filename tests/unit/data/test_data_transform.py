"""Transforms (DuckDB SQL and module:function), the raw-frame helpers and the HTML report."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from mlcycle.artifacts import DatasetVersion
from mlcycle.data import compute_profile, content_hash, infer_schema
from mlcycle.data.build import storable
from mlcycle.data.report import render_report
from mlcycle.data.transform import apply_transforms, transforms_hash
from mlcycle.errors import BadInput
from mlcycle.spec import Features, Problem, Transform


def _raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "t": pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC"),
            "distance": [100.0, 0.0, 250.0, 80.0],
            "carrier": ["UA", "AA", None, "UA"],
            "y": [True, False, True, False],
        }
    )


def test_sql_transforms_run_in_order_over_raw(tmp_path: Path) -> None:
    steps = [
        Transform(sql="SELECT * FROM raw WHERE distance > 0"),
        Transform(sql="SELECT *, distance / 1.609 AS miles FROM raw"),
    ]
    out = apply_transforms(_raw(), steps, tmp_path)
    assert out["id"].tolist() == [1, 3, 4]
    assert out["miles"].round(1).tolist() == [62.2, 155.4, 49.7]
    assert str(out["t"].dtype).endswith("UTC]")  # timestamps stay in UTC
    assert out["carrier"].isna().tolist() == [False, True, False]


def test_python_function_transform_from_the_project_folder(tmp_path: Path) -> None:
    module = f"feat_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{module}.py").write_text(
        "def add_speed(df):\n    df['long'] = df['distance'] > 90\n    return df\n"
        "def broken(df):\n    raise ValueError('no such thing')\n"
        "def wrong(df):\n    return 42\n"
    )
    try:
        out = apply_transforms(_raw(), [Transform(function=f"{module}:add_speed")], tmp_path)
        assert out["long"].tolist() == [True, False, True, False]
        h1 = transforms_hash([Transform(function=f"{module}:add_speed")], tmp_path)
        assert h1 != transforms_hash([Transform(function=f"{module}:broken")], tmp_path)
        with pytest.raises(BadInput, match="raised ValueError"):
            apply_transforms(_raw(), [Transform(function=f"{module}:broken")], tmp_path)
        with pytest.raises(BadInput, match="returned int"):
            apply_transforms(_raw(), [Transform(function=f"{module}:wrong")], tmp_path)
        with pytest.raises(BadInput, match="has no function 'nope'"):
            apply_transforms(_raw(), [Transform(function=f"{module}:nope")], tmp_path)
        with pytest.raises(BadInput, match="cannot import module"):
            apply_transforms(_raw(), [Transform(function="no_such_module_xyz:f")], tmp_path)
    finally:
        sys.modules.pop(module, None)


def test_a_broken_sql_transform_says_which_and_why(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="SQL transform 2 failed") as caught:
        apply_transforms(
            _raw(),
            [Transform(sql="SELECT * FROM raw"), Transform(sql="SELECT nope FROM raw")],
            tmp_path,
        )
    assert "nope" in caught.value.why and "raw" in caught.value.fix


def test_a_transform_needs_exactly_one_kind() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Transform(sql="SELECT 1", function="a:b")
    with pytest.raises(ValueError, match="exactly one"):
        Transform()


def test_storable_turns_mixed_columns_into_text() -> None:
    mixed = pd.concat([pd.DataFrame({"v": [1.5, 2.0]}), pd.DataFrame({"v": ["3 min", None]})])
    out = storable(mixed.reset_index(drop=True))
    assert out["v"].tolist()[:3] == ["1.5", "2.0", "3 min"] and pd.isna(out["v"].iloc[3])
    clean = _raw()
    assert storable(clean) is clean


def test_report_is_one_offline_html_file() -> None:
    df = _raw()
    problem = Problem(task="binary", target="y", id_column="id", timestamp_column="t")
    schema = infer_schema(df, problem, Features())
    record = DatasetVersion(
        rows=len(df),
        columns=list(df.columns),
        source="d.parquet",
        source_fingerprint="f",
        content_hash=content_hash(df),
        schema=schema,
        profile=compute_profile(df, schema),
    )
    html = render_report(df, record, problem, status="valid", title="t <&> test")
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "t &lt;&amp;&gt; test" in html  # titles are escaped
    assert "Class balance" in html and "Missing values" in html and "<svg" in html
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
