"""The loop against a real `serve --shadow` server: the log it writes is what the verdicts read.

A uvicorn server on 127.0.0.1 follows the project's aliases (as `mlcycle serve
models:/NAME@champion --shadow` does); requests go through it; the loop sets the
challenger, judges it on the server's own prediction log, promotes it, and
watches it with the old champion shadowing — the server swapping both on its polls.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from serve_fixtures import live_server
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings

from loop_fixtures import NAME, add_data, data, labels, make_project
from mlcycle import predlog
from mlcycle.cli.serve import make_resolver
from mlcycle.loop.machine import Engine
from mlcycle.loop.verdicts import SHADOW_GRACE_SECONDS
from mlcycle.serve import ModelRuntime, PredictionLog, ServeSettings, create_app


def _send(base: str, rows: list[dict]) -> None:
    for i in range(0, len(rows), 50):
        response = httpx.post(f"{base}/predict", json=rows[i : i + 50], timeout=30)
        assert response.status_code == 200, response.text


def _wait_for(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_shadow_promote_and_watch_on_the_servers_own_log(tmp_path: Path) -> None:
    # A generous latency bound: the guardrail must be judged from the log, not break.
    quick = {"min_rows": 250, "min_duration": "1s", "guardrails": {"max_p99_ms": 60_000}}
    project = make_project(tmp_path, shadow=quick, watch={"min_rows": 250, "duration": "1s"})
    add_data(tmp_path)
    root = predlog.predictions_root(project.store.home)
    _, folder = project.bundle(f"{NAME}@champion")
    settings = ServeSettings(
        shadow=True,
        poll_seconds=0.2,
        spec=tmp_path / "mlcycle.yaml",
        alias="champion",
        prediction_log=root,
        tune_gc=False,
    )
    app = create_app(
        ModelRuntime.load(folder, 1),
        settings,
        resolver=make_resolver(settings.spec, NAME, "champion"),  # type: ignore[arg-type]
        prediction_log=PredictionLog(root),
    )
    engine = Engine(project)
    engine.runs.request(NAME, "new fares", by="test", at=datetime.now(UTC))
    time.sleep(1.0)  # loop.policy.cooldown (1s) since the champion was registered
    with live_server(app) as base:
        assert engine.tick()["run"]["state"] == "shadow"
        first = data(7, 300)
        records = first.drop(columns=["label"]).to_dict("records")
        time.sleep(1.0)  # the server loads the challenger at its next poll
        _send(base, records)
        labels(project, first)
        _wait_for(lambda: len(predlog.list_files(root, NAME)) >= 1)
        time.sleep(SHADOW_GRACE_SECONDS + 1.5)  # the writer flushes every second; the grace
        report = engine.tick()
        verdict = report["run"]["shadow_verdict"]
        assert report["run"]["state"] == "watching", verdict
        assert verdict["rows"] >= 250 and verdict["test"]["test"] == "delong"
        latency = next(c for c in verdict["checks"] if c["name"] == "latency_p99")
        assert latency["passed"] and 0 < latency["value"] < 60_000

        time.sleep(1.0)  # the server swaps champion (v2) and challenger (v1)
        second = data(8, 300)
        _send(base, second.drop(columns=["label"]).to_dict("records"))
        labels(project, second)
        time.sleep(SHADOW_GRACE_SECONDS + 1.5)
        report = engine.tick()
    assert report["run"]["state"] == "done", report["run"]["watch_verdict"]
    assert project.registry.alias_version(NAME, "champion") == 2
    log = predlog.read_files(root, predlog.list_files(root, NAME))
    roles = log.groupby(["role", "model_version"]).size().to_dict()
    # Every request answered and logged; the shadow from the poll that loaded it on.
    assert roles[("champion", 1)] == roles[("champion", 2)] == 300
    assert roles[("shadow", 2)] >= 250 and roles[("shadow", 1)] >= 250
    # Each row carries its request's model time, the champion's and the shadow's own.
    assert log["latency_ms"].notna().all() and (log["latency_ms"] > 0).all()
    per_request = log[log["role"] == "champion"].groupby("request_id")["latency_ms"].nunique()
    assert (per_request == 1).all()
    # The run ended: the old champion no longer shadows.
    assert project.registry.alias_version(NAME, "challenger") is None


def test_log_files_written_before_latency_ms_read_it_as_null(tmp_path: Path) -> None:
    import pandas as pd

    old = pd.DataFrame(
        {
            "request_id": ["r"],
            "ts": [pd.Timestamp("2026-01-01", tz="UTC")],
            "model": [NAME],
            "model_version": [1],
            "role": ["champion"],
            "row_id": ["r:0"],
            "prediction": ["True"],
        }
    )
    predlog.write_predictions(str(tmp_path), NAME, old)
    files = predlog.list_files(str(tmp_path), NAME)
    assert predlog.read_files(str(tmp_path), files)["latency_ms"].isna().all()
    picked = predlog.read_files(str(tmp_path), files, columns=["row_id", "latency_ms"])
    assert list(picked.columns) == ["row_id", "latency_ms"]
