"""The backtest on a small synthetic time series: real pipeline runs, every policy replayed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.loop.backtest import run_backtest
from mlcycle.loop.backtest_replay import cut_windows
from mlcycle.loop.backtest_report import render_html
from mlcycle.pipeline.project import Project

SPEC = """\
project: series
problem:
  task: regression
  target: y
  id_column: row_id
  timestamp_column: ts
  primary_metric: mae
data:
  source: {path: data/series.parquet}
train:
  seed: 1
  baseline: mean
  candidates: [{name: ridge, estimator: linear_regression}]
gates:
  infra_check: false
  thresholds: {mae: 5.0}
  champion: {mode: non_inferiority, tolerance: 0.5}
evaluate: {bootstrap: 50}
monitor: {min_labels: 20}
loop:
  triggers: {performance: {}}
  policy: {cooldown: 1d, retrain_cost: 20, horizon: 30d}
  window: {last_days: 31}    # after a shift, the old rows only hurt
  # a model that corrects a level shift disagrees with the stale one by design
  shadow: {min_rows: 20, min_duration: 1h, guardrails: {min_agreement: 0.0}}
  watch: {min_rows: 20, duration: 1d}
"""


def _series(start: str, end: str, shift: float, seed: int, first_id: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, end, freq="1h", tz="UTC", inclusive="left")
    x = rng.normal(size=len(ts))
    # The level moves from August on: a model trained before it goes stale.
    level = np.where(ts >= pd.Timestamp("2020-08-01", tz="UTC"), shift, 0.0)
    y = 3.0 * x + level + rng.normal(scale=0.3, size=len(ts))
    return pd.DataFrame(
        {"row_id": np.arange(first_id, first_id + len(ts)), "ts": ts, "x": x, "y": y}
    )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    data = tmp_path / "data"
    data.mkdir()
    _series("2020-01-01", "2020-07-01", 4.0, 0, 0).to_parquet(data / "series.parquet")
    _series("2020-07-01", "2020-11-01", 4.0, 1, 10_000).to_parquet(data / "series_future.parquet")
    (tmp_path / "mlcycle.yaml").write_text(SPEC, encoding="utf-8")
    return Project.load(tmp_path)


def test_windows_are_calendar_months() -> None:
    frame = _series("2020-07-01", "2020-11-01", 0.0, 1, 0)
    windows = cut_windows(frame.sample(frac=1.0, random_state=0), "ts", "month")
    assert [w.label for w in windows] == ["2020-07", "2020-08", "2020-09", "2020-10"]
    assert sum(len(w.rows) for w in windows) == len(frame)
    assert all(w.rows["ts"].is_monotonic_increasing for w in windows)


def test_backtest_replays_every_policy(project: Project) -> None:
    result = run_backtest(project, window="month")
    doc = json.loads(json.dumps(result.to_dict()))  # plain JSON all the way down
    assert doc["default"] == "auto"
    names = [p["name"] for p in doc["policies"]]
    assert names == ["never", "periodic", "drift", "performance", "auto"]
    by_name = {p["name"]: p for p in doc["policies"]}
    for policy in doc["policies"]:
        assert set(policy) >= {"name", "score", "retrains", "promotions", "rollbacks", "windows"}
        assert [w["window"] for w in policy["windows"]] == [
            "2020-07",
            "2020-08",
            "2020-09",
            "2020-10",
        ]
        for w in policy["windows"]:
            assert w["metric"] is not None and w["rows"] > 0
    assert by_name["never"]["retrains"] == 0 and by_name["never"]["promotions"] == 0
    assert {w["champion"] for w in by_name["never"]["windows"]} == {1}
    # periodic: one retrain at every window boundary (labels arrive a window late)
    assert by_name["periodic"]["retrains"] == 3
    assert [w["decision"]["retrain"] for w in by_name["periodic"]["windows"][1:]] == [True] * 3
    # the level shift in August: retraining must pay, and the score says so
    assert by_name["periodic"]["score"] > by_name["never"]["score"]
    assert by_name["auto"]["score"] > by_name["never"]["score"]
    # score = −MAE × rows − retrain_cost × retrains
    never = by_name["never"]
    total = sum(-w["metric"] * w["rows"] for w in never["windows"])
    assert never["score"] == pytest.approx(total)
    # the ingest … evaluate of a cut is shared across policies
    assert doc["pipeline"]["steps_cached"] > 0
    # the report: one chart with a line per policy, the events under it
    page = render_html(doc)
    assert page.count("<svg") == 1 and "<script" not in page
    for name in names:
        assert f">{name}<" in page or f">{name} " in page
    assert "P2" in page  # a promotion of v2 is marked


def test_direct_mode_promotes_at_the_boundary(project: Project) -> None:
    spec = project.base_dir / "mlcycle.yaml"
    spec.write_text(SPEC.replace("loop:\n", "loop:\n  mode: direct\n"), encoding="utf-8")
    doc = run_backtest(Project.load(spec), window="month", policies=["periodic"]).to_dict()
    (periodic,) = doc["policies"]
    assert periodic["retrains"] == 3 and periodic["promotions"] == 3
    # no shadow: each blessed model serves its whole window, from the first row
    assert [w["champion"] for w in periodic["windows"]] == [1, 2, 3, 4]
    promotions = [e for w in periodic["windows"] for e in w["events"] if e["kind"] == "promote"]
    assert all(e["at"] == 0 for e in promotions)
