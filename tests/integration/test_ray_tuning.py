"""Tuning with ``train.tuning.backend: ray``: one worker finds the local backend's trials,
one for one; several workers all take trials; the study is the stored one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "train"))

import train_fixtures
from train_fixtures import CANCER, auc, cancer

from mlcycle.errors import BadInput
from mlcycle.spec import Candidate, CrossValidation, Tuning
from mlcycle.train.tuning import TrialReport, TuningResult, tune

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


@pytest.fixture(autouse=True)
def _fixtures_by_value(ray_cluster: Any) -> None:
    # The metric lives in a test helper the Ray workers cannot import: ship it by value.
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(train_fixtures)


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


def test_one_ray_worker_finds_the_local_backends_trials(
    ray_cluster: Any,
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


def test_several_ray_workers_all_take_trials(
    ray_cluster: Any,
    tmp_path: Path,
) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    result = run(Tuning(trials=6, backend="ray"), storage, "wide", [])  # every CPU: 2
    assert result.complete + result.pruned == 6
    pids = {t.user_attrs["worker_pid"] for t in trials(storage, "wide")}
    assert len(pids) >= 2, pids


def test_ray_backend_without_a_stored_study_is_refused(
    ray_cluster: Any,
) -> None:
    with pytest.raises(BadInput, match="needs a stored study"):
        run(Tuning(trials=2, backend="ray"), None, "none", [])
