"""Ray: batch prediction and tuning.

Batch (``engine="ray"``): the local engine's rows exactly, rejects included, and
its prediction log; a worker killed mid-job costs nothing; clear errors without Ray or without a
cluster. Tuning (``train.tuning.backend: ray``): one worker finds the local
backend's trials, one for one; several workers all take trials; the study is
the stored one.

One module on purpose: the suite runs ``pytest -n auto --dist loadfile``, so
every Ray test runs in one worker and shares that worker's one local cluster
(``tests/ray_fixtures.py``) instead of two clusters fighting for two cores.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pyarrow as pa
import pytest
from serve_fixtures import build_bundle, flights_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "train"))

import train_fixtures
from train_fixtures import CANCER, auc, cancer

from mlcycle.errors import BadInput
from mlcycle.serve import ModelRuntime, predict_file
from mlcycle.serve.batch.score import ScoredChunk
from mlcycle.spec import Candidate, CrossValidation, Tuning
from mlcycle.train.tuning import TrialReport, TuningResult, tune


@pytest.fixture(scope="module")
def rt(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    return ModelRuntime.load(build_bundle(tmp_path_factory.mktemp("bundle") / "b"), version=5)


def dirty(n: int = 3000) -> pd.DataFrame:
    """Flights with rows that break the contract, in different chunks."""
    frame = flights_frame(n, seed=7)
    frame["distance"] = frame["distance"].astype("float64")
    frame.loc[10, "carrier"] = "ZZ"
    frame.loc[n // 2, "distance"] = None
    frame.loc[n - 5, "origin"] = "XXX"
    return frame


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_ray_writes_what_the_local_engine_writes(
    ray_cluster: Any,
    rt: ModelRuntime,
    tmp_path: Path,
    fmt: str,
) -> None:
    data = tmp_path / f"in.{fmt}"
    frame = dirty()
    frame.to_parquet(data) if fmt == "parquet" else frame.to_csv(data, index=False)
    local = predict_file(rt, str(data), str(tmp_path / "local.parquet"), chunk_rows=1000)
    seen: list[int] = []
    on_ray = predict_file(
        rt,
        str(data),
        str(tmp_path / "ray.parquet"),
        chunk_rows=1000,
        engine="ray",
        progress=seen.append,
    )
    assert on_ray["engine"].startswith("ray/")
    for key in ("rows", "predicted", "rejected", "out_of_range"):
        assert on_ray[key] == local[key], key
    assert (on_ray["rows"], on_ray["rejected"]) == (3000, 3) and sum(seen) == 3000
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "ray.parquet"), pd.read_parquet(tmp_path / "local.parquet")
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "ray.rejects.parquet"),
        pd.read_parquet(tmp_path / "local.rejects.parquet"),
    )
    # Nothing but the inputs and the published files: no temporary left behind.
    assert {p.name for p in tmp_path.iterdir()} == {
        data.name,
        "local.parquet",
        "local.rejects.parquet",
        "ray.parquet",
        "ray.rejects.parquet",
    }


@pytest.mark.ray
def test_a_worker_killed_mid_job_costs_no_row(
    ray_cluster: Any,
    rt: ModelRuntime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlcycle.serve.batch import ray_engine

    marker = tmp_path / "die-once"
    marker.touch()
    died = tmp_path / "died"

    class DiesOnce(ray_engine.RayChunkScorer):
        # Defined here, so Ray ships it by value to the workers.
        def score(self, batch: pa.Table) -> ScoredChunk:
            try:
                marker.unlink()  # only one actor wins the marker
            except FileNotFoundError:
                return super().score(batch)
            died.write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-chunk, as on a lost node

    monkeypatch.setattr(ray_engine, "RayChunkScorer", DiesOnce)
    data = tmp_path / "in.parquet"
    flights_frame(4000, seed=3).to_parquet(data)
    result = predict_file(
        rt, str(data), str(tmp_path / "out.parquet"), chunk_rows=500, engine="ray"
    )
    assert died.exists(), "no actor died: the test tested nothing"
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert result["rows"] == 4000 and len(out) == 4000
    assert out["flight_id"].is_unique
    assert out["flight_id"].tolist() == [f"F{i:05d}" for i in range(4000)]  # and in order


def test_without_ray_installed_the_error_says_what_to_install(
    rt: ModelRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    data = tmp_path / "in.parquet"
    flights_frame(50).to_parquet(data)
    with pytest.raises(BadInput, match=r"install mlcycle\[ray\]"):
        predict_file(rt, str(data), str(tmp_path / "out.parquet"), engine="ray")
    assert {p.name for p in tmp_path.iterdir()} == {"in.parquet"}


def test_an_unreachable_ray_address_fails_at_once_naming_it(
    rt: ModelRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ray = pytest.importorskip("ray")
    # As in a fresh process: not connected yet (the session's cluster may be up here).
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    data = tmp_path / "in.parquet"
    flights_frame(50).to_parquet(data)
    with pytest.raises(
        BadInput, match=f"cannot reach the Ray cluster at RAY_ADDRESS=127.0.0.1:{port}"
    ):
        predict_file(rt, str(data), str(tmp_path / "out.parquet"), engine="ray")
    assert {p.name for p in tmp_path.iterdir()} == {"in.parquet"}


def test_the_base_install_never_imports_ray() -> None:
    code = (
        "import sys, mlcycle.cli.main, mlcycle.cli.serve, mlcycle.serve, mlcycle.train, "
        "mlcycle.train.tuning, mlcycle.serve.batch.job, mlcycle.ray_cluster\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


@pytest.mark.ray
def test_an_actors_error_reaches_the_caller_as_mlcycles_and_nothing_is_written(
    ray_cluster: Any, rt: ModelRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlcycle.serve.batch import ray_engine

    class Refuses(ray_engine.RayChunkScorer):
        def score(self, batch: pa.Table) -> ScoredChunk:
            raise BadInput("input files disagree on column types", "planted", "fix the input")

    monkeypatch.setattr(ray_engine, "RayChunkScorer", Refuses)
    data = tmp_path / "in.parquet"
    flights_frame(300).to_parquet(data)
    with pytest.raises(BadInput) as caught:
        predict_file(rt, str(data), str(tmp_path / "out.parquet"), engine="ray")
    # mlcycle's own error, not Ray's wrapper with a remote traceback.
    assert caught.value.message == "input files disagree on column types — planted — fix the input"
    assert {p.name for p in tmp_path.iterdir()} == {"in.parquet"}


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_logged_ray_job_logs_what_the_local_engine_logs(
    ray_cluster: Any, rt: ModelRuntime, tmp_path: Path, fmt: str
) -> None:
    from mlcycle.serve import PredictionLog

    data = tmp_path / f"in.{fmt}"
    frame = dirty()
    frame.to_parquet(data) if fmt == "parquet" else frame.to_csv(data, index=False)

    def logged(engine: str) -> pd.DataFrame:
        log = PredictionLog(tmp_path / f"log-{engine}")
        out = tmp_path / f"{engine}.parquet"
        predict_file(rt, str(data), str(out), chunk_rows=1000, engine=engine, prediction_log=log)
        log.close()
        files = sorted((tmp_path / f"log-{engine}").rglob("*.parquet"))
        rows = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return rows.sort_values("row_id", ignore_index=True)

    local, on_ray = logged("auto"), logged("ray")
    assert len(on_ray) == 3000 - 3  # every scored row, no reject
    # Each job has its own request id and clock; everything else is the same rows.
    per_job = ["request_id", "ts", "logged_at", "date", "latency_ms"]
    kept = [c for c in local.columns if c not in per_job]
    pd.testing.assert_frame_equal(on_ray[kept], local[kept])
    assert on_ray["request_id"].nunique() == 1


# --- tuning on Ray ------------------------------------------------------------------


@pytest.fixture
def tuning_cluster(ray_cluster: Any) -> Any:
    # The metric lives in a test helper the Ray workers cannot import: ship it by value.
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(train_fixtures)
    return ray_cluster


RF = Candidate.model_validate(
    {
        "name": "rf",
        "estimator": "random_forest",
        "params": {"n_estimators": 8},
        "search": {
            "max_depth": {"type": "int", "low": 2, "high": 8},
            "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
        },
    }
)


def run(tuning: Tuning, storage: str | None, name: str, seen: list[TrialReport]) -> TuningResult:
    train, _, schema = cancer()
    return tune(
        train,
        RF,
        schema=schema,
        problem=CANCER,
        seed=3,
        metric=auc,
        greater_is_better=True,
        tuning=tuning,
        cv=CrossValidation(folds=3),
        storage=storage,
        study_name=name,
        on_trial=seen.append,
    )


def trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


@pytest.mark.ray
def test_one_ray_worker_finds_the_local_backends_trials(
    tuning_cluster: Any,
    tmp_path: Path,
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    local_seen: list[TrialReport] = []
    ray_seen: list[TrialReport] = []
    local = run(Tuning(trials=6), storage, "local", local_seen)
    on_ray = run(Tuning(trials=6, backend="ray", n_jobs=1), storage, "ray", ray_seen)
    assert (on_ray.best_trial, on_ray.best_params, on_ray.best_value) == (
        local.best_trial,
        local.best_params,
        local.best_value,
    )
    assert (on_ray.complete, on_ray.pruned) == (local.complete, local.pruned)
    pairs = zip(trials(storage, "local"), trials(storage, "ray"), strict=True)
    assert all((a.params, a.value, a.state) == (b.params, b.value, b.state) for a, b in pairs)
    # Every trial reported here (tracking), with its folds, as the local backend does.
    assert [(r.number, r.state, r.fold_scores) for r in ray_seen] == [
        (r.number, r.state, r.fold_scores) for r in local_seen
    ]
    assert on_ray.best_oof is not None and local.best_oof is not None
    assert (on_ray.best_oof == local.best_oof).all()


@pytest.mark.ray
def test_several_ray_workers_all_take_trials(
    tuning_cluster: Any,
    tmp_path: Path,
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    result = run(Tuning(trials=6, backend="ray"), storage, "wide", [])  # every CPU: 2
    assert result.complete + result.pruned == 6
    pids = {t.user_attrs["worker_pid"] for t in trials(storage, "wide")}
    assert len(pids) >= 2, pids


@pytest.mark.ray
def test_ray_backend_without_a_stored_study_is_refused(
    tuning_cluster: Any,
) -> None:
    with pytest.raises(BadInput, match="needs a stored study"):
        run(Tuning(trials=2, backend="ray"), None, "none", [])
