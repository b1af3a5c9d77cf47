"""Signals read from the live store, and the triggers they fire through the policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loop_fixtures import NAME, add_data, make_project
from mlcycle.loop.live import gather, read_champion, recovery_signal
from mlcycle.loop.machine import Engine
from mlcycle.loop.state import LoopStore, stamp
from mlcycle.monitor.alerts import store_alerts
from mlcycle.pipeline.project import Project
from mlcycle.store import tables as t

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _windows(project: Project, realized: list[float | None], drift: list[bool]) -> None:
    """Daily monitoring windows of the champion (v1), with drift alerts where asked."""
    alerts = []
    with project.store.engine.begin() as conn:
        for i, (value, drifted) in enumerate(zip(realized, drift, strict=True)):
            key = f"2029-12-{20 + i:02d}"
            start = T0 - timedelta(days=len(realized) - i)
            metrics = {"labels": 0 if value is None else 500}
            if value is not None:
                metrics["realized:roc_auc"] = value
            conn.execute(
                t.monitor_windows.insert().values(
                    model=NAME,
                    window=key,
                    model_version=1,
                    start=stamp(start),
                    end=stamp(start + timedelta(days=1)),
                    rows=1000,
                    metrics=json.dumps(metrics),
                    computed_at=stamp(start),
                )
            )
            if drifted:
                alerts.append(
                    {
                        "model_version": 1,
                        "window": key,
                        "rule": "data_drift:x1",
                        "metric": "drift:x1",
                        "value": 1.0,
                        "bound": "> 0.5",
                        "severity": "warning",
                        "message": "x1 drifted",
                    }
                )
    store_alerts(project.store, NAME, alerts, ["log"])


def test_signals_come_from_the_registry_monitoring_landing_and_history(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    _windows(project, [0.85, None, None, None], [False, True, False, True])
    runs = LoopStore(project.store)
    runs.request(NAME, "please", by="test", at=T0)
    add_data(tmp_path, n=600)
    project.catalog.land(project.spec.data.source, tmp_path, id_column="rid")  # data ingest
    champion = read_champion(project)
    assert champion is not None and champion.version == 1
    s = gather(project, champion, runs, now=T0)
    assert (
        s.holdout.metric == "roc_auc" and s.holdout.ci_low <= s.holdout.value <= s.holdout.ci_high
    )
    assert [w.drift_alert for w in s.windows] == [False, True, False, True]
    assert s.windows[0].realized == 0.85 and s.windows[0].labelled_rows == 500
    assert s.drift_streak == 1
    assert s.new_rows == 600
    assert s.rows_per_day == pytest.approx(1000.0)
    assert s.manual_reason == "please"
    assert s.last_retrain_at == champion.registered_at and s.recent_retrains == ()


@pytest.mark.parametrize(
    ("triggers", "realized", "drift", "landed", "fired"),
    [
        ({"drift": {"windows": 2}}, [None, None, None], [False, True, True], False, "drift"),
        ({"performance": {}}, [None, None, 0.55], [False, False, False], False, "performance"),
        ({"new_data": {"min_rows": 500}}, [None], [False], True, "new_data"),
    ],
)
def test_each_trigger_fires_once_from_live_signals(
    tmp_path: Path, triggers: dict, realized: list, drift: list, landed: bool, fired: str
) -> None:
    project = make_project(tmp_path, triggers=triggers)
    _windows(project, realized, drift)
    if landed:
        add_data(tmp_path, n=600)
        project.catalog.land(project.spec.data.source, tmp_path, id_column="rid")
    engine = Engine(project, clock=lambda: T0)
    report = engine.tick()
    assert report["decision"]["trigger"] == fired, report["decision"]
    assert report["run"]["trigger"] == fired
    # Debounced: the signal still holds, but a run is in flight (or the cooldown holds).
    again = engine.tick()
    assert again.get("decision") is None or not again["decision"]["retrain"]
    assert len(engine.runs.runs(NAME)) == 1


def test_recovery_is_read_from_the_champions_labelled_log(tmp_path: Path) -> None:
    from loop_fixtures import data, labels, traffic

    project = make_project(tmp_path)
    runs = LoopStore(project.store)
    champion = read_champion(project)
    assert champion is not None
    first, second = data(7, 300), data(8, 300)
    # Two daily windows [T0-2d, T0-1d) and [T0-1d, T0); the champion served both.
    traffic(project, first, served=1, shadow=None, at=T0 - timedelta(hours=36))
    traffic(project, second, served=1, shadow=None, at=T0 - timedelta(hours=12))
    labels(project, first)
    _windows(project, [None, None], [False, False])
    windows = list(gather(project, champion, runs, now=T0).windows)
    assert recovery_signal(project, champion, windows) is None  # no labelled window

    labels(project, second)
    with project.store.engine.begin() as conn:  # the monitor's figures once labels are in
        conn.execute(t.monitor_windows.delete())
    _windows(project, [0.85, 0.84], [False, False])
    signals = gather(project, champion, runs, now=T0)
    assert signals.recovery is None  # no trigger on, no cost rule: the log is not read
    recovery = recovery_signal(project, champion, list(signals.windows))
    assert recovery is not None and recovery.rows == 300  # the latest window, paired
    assert recovery.units == "correct" and recovery.method.startswith("decision threshold")
    # The champion is the model that made these labels: a re-fitted cut recovers nothing.
    assert recovery.gain_per_row == pytest.approx(0.0, abs=0.02)

    # With the cost rule on and a trigger firing (drift), gather reads it for the policy.
    import yaml

    spec = yaml.safe_load((tmp_path / "mlcycle.yaml").read_text())
    spec["loop"]["triggers"] = {"drift": {"windows": 1}}
    spec["loop"]["policy"]["retrain_cost"] = 1
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    project = Project.load(tmp_path)
    with project.store.engine.begin() as conn:
        conn.execute(t.monitor_windows.delete())
    _windows(project, [0.85, 0.84], [False, True])
    assert gather(project, champion, runs, now=T0).recovery == recovery


def test_new_rows_count_the_version_the_data_step_built(tmp_path: Path) -> None:
    import pandas as pd
    import yaml

    make_project(tmp_path)
    add_data(tmp_path, seed=2, n=600)
    # A transform that keeps only half of the new rows: the built version holds those.
    spec = yaml.safe_load((tmp_path / "mlcycle.yaml").read_text())
    keep = "SELECT * FROM raw WHERE rid NOT LIKE 'r2-%' OR x1 > 0"
    spec["data"]["transforms"] = [{"sql": keep}]
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    project = Project.load(tmp_path)
    champion = read_champion(project)
    assert champion is not None
    runs = LoopStore(project.store)
    raw = pd.read_parquet(tmp_path / "data.parquet")
    kept = int((raw["rid"].str.startswith("r2-") & (raw["x1"] > 0)).sum())
    assert 200 < kept < 400

    project.run(until="validate")  # the data step lands the rows and builds the version
    assert gather(project, champion, runs, now=T0).new_rows == kept
