"""A pipeline run never stays `running` after its command ended, and step errors read clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from mlcycle.cli.main import app
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.steps.train import Train
from mlcycle.store import Store
from mlcycle.store import tables as t
from mlcycle.train.tracking import query


def _project_dir(root: Path) -> Path:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 2))
    frame = pd.DataFrame(X, columns=["a", "b"])
    frame["y"] = X[:, 0] + rng.normal(scale=0.5, size=300) > 0
    frame.to_parquet(root / "data.parquet", index=False)
    spec = {
        "project": "interrupts",
        "problem": {"task": "binary", "target": "y", "positive_label": True},
        "data": {"source": {"path": "data.parquet"}},
        "prepare": {"split": {"strategy": "random"}},
        "train": {
            "seed": 1,
            "baseline": "prior",
            "candidates": [{"name": "lr", "estimator": "logistic_regression"}],
        },
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return root


def _runs(root: Path) -> list[dict[str, Any]]:
    store = Store.open(root)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(t.pipeline_runs).order_by(t.pipeline_runs.c.started_at))
            return [dict(r) for r in rows.mappings()]
    finally:
        store.close()


def _steps(root: Path, run_id: str) -> dict[str, dict[str, Any]]:
    store = Store.open(root)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.step_runs).where(t.step_runs.c.pipeline_run_id == run_id)
            )
            return {r["step"]: dict(r) for r in rows.mappings()}
    finally:
        store.close()


# A child that runs the lifecycle and parks inside the train step (after starting a
# tracked run), so the parent can kill it mid-step.
_PARKED = """
import sys, time
import mlcycle
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.steps.train import Train

def parked(self, ctx, inputs):
    with mlcycle.start_run(name="parked", store=ctx.store):
        mlcycle.flush()
        print("parked", flush=True)
        time.sleep(600)

Train.run = parked
Project.load(sys.argv[1]).run()
"""


def _parked_child(root: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_PARKED), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "parked", proc.stderr.read() if proc.stderr else ""
    return proc


def test_kill_9_leaves_a_run_the_next_start_marks_killed(tmp_path: Path) -> None:
    root = _project_dir(tmp_path)
    proc = _parked_child(root)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    [run] = _runs(root)
    assert run["status"] == "running" and run["pid"] == proc.pid  # nobody could record it

    project = Project.load(root)
    try:
        project.run(until="ingest")
        tracked = query.search_runs(project.store.engine, filter="name = 'parked'")
    finally:
        project.close()
    dead, fresh = _runs(root)
    assert dead["id"] == run["id"] and dead["status"] == "killed"
    assert str(proc.pid) in dead["message"]
    assert fresh["status"] == "succeeded"
    assert [r.info["status"] for r in tracked] == ["killed"]


def test_sigterm_marks_the_run_and_its_step_killed(tmp_path: Path) -> None:
    root = _project_dir(tmp_path)
    proc = _parked_child(root)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    [run] = _runs(root)
    assert run["status"] == "killed" and run["ended_at"]
    steps = _steps(root, run["id"])
    assert steps["split"]["status"] == "ran" and steps["train"]["status"] == "killed"
    store = Store.open(root)
    try:
        [tracked] = query.search_runs(store.engine, filter="name = 'parked'")
    finally:
        store.close()
    assert tracked.info["status"] == "killed"


def test_ctrl_c_marks_the_run_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: Train, ctx: Any, inputs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Train, "run", interrupted)
    project = Project.load(_project_dir(tmp_path))
    try:
        with pytest.raises(KeyboardInterrupt):
            project.run()
    finally:
        project.close()
    [run] = _runs(tmp_path)
    assert run["status"] == "killed" and "Ctrl-C" in run["message"]
    assert _steps(tmp_path, run["id"])["train"]["status"] == "killed"


def test_a_missing_source_fails_the_run_with_exit_2(tmp_path: Path) -> None:
    root = _project_dir(tmp_path)
    (root / "data.parquet").unlink()
    result = CliRunner().invoke(app, ["run", "--spec", str(root / "mlcycle.yaml")])
    assert result.exit_code == 2, result.output
    assert "mlcycle: step 'ingest' failed" in result.output
    assert "Traceback" not in result.output
    [run] = _runs(root)
    assert run["status"] == "failed"
    assert _steps(root, run["id"])["ingest"]["status"] == "failed"


def test_an_unexpected_error_in_a_step_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Train, ctx: Any, inputs: Any) -> Any:
        raise ZeroDivisionError("division by zero in the loss")

    monkeypatch.setattr(Train, "run", broken)
    root = _project_dir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--spec", str(root / "mlcycle.yaml")])
    assert result.exit_code == 1, result.output
    assert (
        "mlcycle: step 'train' failed: ZeroDivisionError: division by zero in the loss"
        in " ".join(result.output.split())
    )
    assert "Traceback" not in result.output
    [run] = _runs(root)
    assert run["status"] == "failed"
    error = _steps(root, run["id"])["train"]["error"]
    assert "Traceback" in error and "ZeroDivisionError" in error  # kept for `mlcycle steps`


def test_a_run_fits_within_the_thread_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cap on OpenMP/BLAS threads (train/threads.py) holds for the steps of a run.
    import contextlib

    from mlcycle.train import threads

    active: list[bool] = []
    inside = [False]
    entered: list[int] = []

    @contextlib.contextmanager
    def capped() -> Any:
        entered.append(1)
        inside[0] = True
        try:
            yield 1
        finally:
            inside[0] = False

    original = Train.run

    def recording(self: Train, ctx: Any, inputs: Any) -> Any:
        active.append(inside[0])
        return original(self, ctx, inputs)

    monkeypatch.setattr(threads, "fitting_threads", capped)
    monkeypatch.setattr(Train, "run", recording)
    project = Project.load(_project_dir(tmp_path))
    try:
        project.run()
        assert active == [True] and inside == [False] and len(entered) == 1
        project.run()  # every step cached: the machine is not measured at all
    finally:
        project.close()
    assert active == [True] and len(entered) == 1
