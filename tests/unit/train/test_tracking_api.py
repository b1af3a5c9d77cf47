"""The tracking library against real stores (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import pytest

from mlcycle.errors import BadInput, NotFound
from mlcycle.store import Store
from mlcycle.train.tracking import Tracker, query


@pytest.fixture
def tracker(store: Store) -> Tracker:
    t = Tracker(store, flush_interval=60)
    yield t
    t.close()


def test_runs_params_metrics_tags_round_trip(tracker: Tracker) -> None:
    before = time.time()
    with tracker.start_run("first", experiment="exp", seed=7, dataset_id="d1") as run:
        time.sleep(0.05)  # a duration that a missing or zeroed end time cannot fake
        run.log_params({"lr": 0.1, "depth": 3})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"auc": 0.8, "gap": float("nan")})
        run.set_tags({"stage": "dev"})
        run.set_tag("stage", "prod")  # tags may change
        run.log_metric("auto", 1.0)
        run.log_metric("auto", 2.0)
    elapsed = time.time() - before
    assert tracker.pending() > 0  # buffered, not written yet
    tracker.flush()
    assert tracker.pending() == 0
    view = query.get_run(tracker.engine, run.id[:10])
    assert view.info["status"] == "finished"
    assert view.info["seed"] == 7 and view.info["dataset_id"] == "d1"
    # 1 ms of slack for float rounding of epoch seconds (a 0.24 µs ulp at today's dates).
    assert 0.05 <= view.info["duration_s"] <= elapsed + 1e-3
    assert before - 1e-3 <= view.info["start_time"] <= before + elapsed + 1e-3
    assert view.params == {"lr": "0.1", "depth": "3"}
    assert view.metrics["loss"] == pytest.approx(0.2)
    assert math.isnan(view.metrics["gap"])
    assert view.tags["stage"] == "prod"
    assert view.tags["mlcycle.lib.python"].startswith("3.")
    history = query.metric_history(tracker.engine, run.id, "loss")
    assert [s for s, _, _ in history] == [0, 1, 2, 3, 4]
    assert [s for s, _, _ in query.metric_history(tracker.engine, run.id, "auto")] == [0, 1]


def test_search_filters_and_order(tracker: Tracker) -> None:
    for i in range(6):
        with tracker.start_run(f"r{i}", experiment="grid") as run:
            run.log_params({"family": "hgb" if i % 2 else "rf"})
            run.log_metric("auc", 0.5 + i / 10, step=0)
            run.log_metric("auc", 0.1, step=-1)  # an older step: the latest is step 0
    with tracker.start_run("other", experiment="elsewhere"):
        pass
    tracker.flush()
    found = query.search_runs(
        tracker.engine,
        experiment="grid",
        filter="metrics.auc >= 0.7 and params.family = 'hgb'",
        order_by="metrics.auc desc",
    )
    assert [r.info["name"] for r in found] == ["r5", "r3"]
    assert found[0].metrics["auc"] == pytest.approx(1.0)
    assert len(query.search_runs(tracker.engine, filter="status = 'finished'")) == 7
    assert len(query.search_runs(tracker.engine, experiment="grid", limit=2)) == 2
    like = query.search_runs(tracker.engine, filter="name like 'r%'")
    assert len(like) == 6


@pytest.mark.parametrize(
    "bad",
    [
        "metrics.auc >",
        "metrics.auc > 'high'",
        "params.depth > 3",
        "colour = 'red'",
    ],
)
def test_bad_filters_say_what_to_write(tracker: Tracker, bad: str) -> None:
    with pytest.raises(BadInput) as err:
        query.search_runs(tracker.engine, filter=bad)
    assert err.value.fix


def test_bad_input(tracker: Tracker, tmp_path: Path) -> None:
    with tracker.start_run("x") as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(BadInput, match="already"):
            run.log_param("lr", 0.2)
        with pytest.raises(BadInput, match="not a number"):
            run.log_metric("auc", "high")  # type: ignore[arg-type]
        with pytest.raises(BadInput, match="no such file"):
            run.log_artifact(tmp_path / "missing.txt")
        with pytest.raises(BadInput, match="status"):
            run.end("exploded")
    with pytest.raises(NotFound):
        query.get_run(tracker.engine, "ffffffff")


def test_log_artifact_is_content_addressed(tracker: Tracker, tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("hello")
    with tracker.start_run("files") as run:
        artifact_id = run.log_artifact(file)
    tracker.flush()
    assert (tracker.store.path(artifact_id) / "files" / "notes.txt").read_text() == "hello"
    assert query.get_run(tracker.engine, run.id).files == {"notes.txt": artifact_id}


def test_exception_marks_failed_and_flushes(tracker: Tracker) -> None:
    with pytest.raises(RuntimeError), tracker.start_run("boom") as run:
        run.log_metric("m", 1.0)
        raise RuntimeError("x")
    assert tracker.pending() == 0  # flushed at once
    view = query.get_run(tracker.engine, run.id)
    assert view.info["status"] == "failed" and view.metrics == {"m": 1.0}


def test_nested_runs_and_active_run(tracker: Tracker) -> None:
    with tracker.start_run("parent") as parent:
        with tracker.start_run("child", parent=parent) as child:
            assert tracker.active_run() is child
        assert tracker.active_run() is parent
    assert tracker.active_run() is None
    tracker.flush()
    kids = query.search_runs(tracker.engine, filter=f"parent_id = '{parent.id}'")
    assert [k.id for k in kids] == [child.id]


def test_module_api_outside_a_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlcycle

    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput, match="no active run"):
        mlcycle.log_metric("x", 1.0)
    with mlcycle.start_run(name="lib", params={"a": 1}) as run:
        mlcycle.log_metrics({"m": 2.0}, step=3)
        mlcycle.set_tags({"t": "v"})
        mlcycle.log_params({"b": 2})
    found = mlcycle.search_runs(filter="params.a = '1'")
    assert [r.id for r in found] == [run.id]
    assert (tmp_path / ".mlcycle" / "mlcycle.db").is_file()
    assert mlcycle.get_run(run.id).metrics == {"m": 2.0}


def test_import_mlcycle_stays_light() -> None:
    import subprocess

    code = (
        "import sys, mlcycle; mlcycle.start_run; "
        "bad = [m for m in ('optuna', 'lightgbm', 'sklearn') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_later_flush_of_an_earlier_step_keeps_the_latest_value(tracker: Tracker) -> None:
    with tracker.start_run("late") as run:
        run.log_metrics({"loss": 0.1, "acc": 0.9}, step=9)
        tracker.flush()
        run.log_metrics({"loss": 0.5}, step=5)  # e.g. a delayed evaluation
        run.log_metric("acc", 0.95, step=10)
    tracker.flush()
    view = query.get_run(tracker.engine, run.id)
    assert view.metrics == {"loss": 0.1, "acc": 0.95}
    assert [s for s, _, _ in query.metric_history(tracker.engine, run.id, "loss")] == [5, 9]
    assert [r.id for r in query.search_runs(tracker.engine, filter="metrics.loss < 0.2")] == [
        run.id
    ]


def test_a_failed_flush_keeps_everything_for_the_next_one(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with tracker.start_run("retry") as run:
        run.log_params({"lr": 0.1})
        run.log_metric("loss", 0.5, step=0)
        run.log_metrics({"loss": 0.4, "acc": 0.8}, step=1)
    pending = tracker.pending()
    engine = tracker.engine

    class Down:
        def begin(self) -> None:
            raise ConnectionError("database unreachable")

    monkeypatch.setattr(tracker, "engine", Down())
    with pytest.raises(ConnectionError):
        tracker.flush()
    assert tracker.pending() == pending  # nothing dropped
    monkeypatch.setattr(tracker, "engine", engine)
    tracker.flush()
    view = query.get_run(engine, run.id)
    assert view.params == {"lr": "0.1"} and view.metrics == {"loss": 0.4, "acc": 0.8}
    assert [s for s, _, _ in query.metric_history(engine, run.id, "loss")] == [0, 1]
