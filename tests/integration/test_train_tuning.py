"""Tuning on a real dataset (breast cancer): two families, the winner beats the baseline;
an interrupted study resumes with its finished trials kept; a pruned trial is tracked as
pruned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "train"))

from train_fixtures import CANCER, auc, cancer

from mlcycle.spec import Candidate, CrossValidation, Tuning
from mlcycle.store import Store
from mlcycle.train.fit import fit_baseline, fit_candidate, predictions
from mlcycle.train.tuning import TrialReport, optuna_url, tune

LR = {
    "name": "lr",
    "estimator": "logistic_regression",
    "search": {"C": {"type": "log", "low": 0.001, "high": 10}},
}
RF = {
    "name": "rf",
    "estimator": "random_forest",
    "params": {"n_estimators": 15},
    "search": {
        "max_depth": {"type": "int", "low": 2, "high": 8},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 10, "log": True},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    },
}


def test_two_families_tuned_with_cv_and_the_winner_beats_the_baseline(tmp_path: Path) -> None:
    train, valid, schema = cancer()
    store = Store.open(tmp_path)
    url = optuna_url(store.engine.url.render_as_string(hide_password=False))
    seen: list[TrialReport] = []
    best: dict[str, float] = {}
    for raw in (LR, RF):
        candidate = Candidate.model_validate(raw)
        result = tune(
            train,
            candidate,
            schema=schema,
            problem=CANCER,
            seed=0,
            metric=auc,
            greater_is_better=True,
            tuning=Tuning(trials=4),
            cv=CrossValidation(folds=3),
            storage=url,
            study_name=f"cancer.{candidate.name}",
            on_trial=seen.append,
        )
        assert result.complete + result.pruned == 4 and result.resumed == 0
        assert result.best_oof is not None and result.best_oof.shape == (len(train),)
        assert set(candidate.search) <= set(result.best_params)
        fit = fit_candidate(
            train, candidate, schema=schema, problem=CANCER, seed=0, overrides=result.best_params
        )
        best[candidate.name] = auc(
            valid["malignant"].to_numpy(),
            predictions("binary", fit.model, valid[fit.features], True),
        )
    assert len(seen) == 8 and all(len(t.fold_scores) == 3 for t in seen if t.state == "complete")
    baseline = fit_baseline(train, strategy="prior", schema=schema, problem=CANCER)
    base_auc = auc(
        valid["malignant"].to_numpy(),
        predictions("binary", baseline.model, valid[baseline.features], True),
    )
    winner = max(best, key=best.__getitem__)
    assert best[winner] > base_auc + 0.3
    # The studies live in the store's own database.
    assert {s.study_name for s in optuna.get_all_study_summaries(url)} == {"cancer.lr", "cancer.rf"}
    store.close()


def test_holdout_tuning_and_parallel_trials(tmp_path: Path) -> None:
    train, valid, schema = cancer()
    store = Store.open(tmp_path)
    result = tune(
        train,
        Candidate.model_validate(LR),
        schema=schema,
        problem=CANCER,
        seed=0,
        metric=auc,
        greater_is_better=True,
        tuning=Tuning(trials=6, n_jobs=2),
        valid=valid,
        storage=optuna_url(store.engine.url.render_as_string(hide_password=False)),
        study_name="par",
    )
    assert result.complete == 6 and result.best_value > 0.95
    store.close()


CHILD = """
import sys, time
sys.path.insert(0, {fixtures!r})
from train_fixtures import CANCER, auc, cancer
from mlcycle.spec import Candidate, CrossValidation, Tuning
from mlcycle.train.tuning import tune
train, valid, schema = cancer()
def on_trial(report):
    print(report.number, report.state, flush=True)
    if report.number == 2 and {stall}:
        time.sleep(600)  # killed here, with trial 2 still running
result = tune(train, Candidate.model_validate({lr!r}), schema=schema, problem=CANCER, seed=0,
              metric=auc, greater_is_better=True, tuning=Tuning(trials=6),
              cv=CrossValidation(folds=3), storage={url!r}, study_name="resume",
              on_trial=on_trial)
print("done", result.resumed, result.complete, flush=True)
"""


def test_killed_tuning_resumes_with_its_trials_kept(store_url: str, tmp_path: Path) -> None:
    # On SQLite the study is in .mlcycle/mlcycle.optuna.db; on PostgreSQL (when
    # MLCYCLE_TEST_POSTGRES_URL is set) in the store database's `<schema>_optuna`.
    Store.open(tmp_path, url=store_url).close()
    url = optuna_url(store_url)
    try:
        _kill_then_resume(url)
    finally:
        _drop_optuna_schema(url)


def _kill_then_resume(url: str) -> None:
    fixtures = str(Path(__file__).resolve().parents[1] / "unit" / "train")

    def child(stall: bool) -> subprocess.Popen[str]:
        code = CHILD.format(fixtures=fixtures, stall=stall, lr=LR, url=url)
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = child(stall=True)
    assert first.stdout is not None
    lines = [first.stdout.readline().strip() for _ in range(3)]
    assert lines[-1].startswith("2 ")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    study = optuna.load_study(study_name="resume", storage=url)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2
    assert states.count(optuna.trial.TrialState.RUNNING) == 1

    second = child(stall=False)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    assert out.strip().splitlines()[-1] == "done 2 6"  # 2 kept, 4 more to reach the budget of 6
    study = optuna.load_study(study_name="resume", storage=url)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6
    assert states.count(optuna.trial.TrialState.FAIL) == 1  # the one killed mid-way
    assert np.isfinite(study.best_value)


def _drop_optuna_schema(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


def test_lightgbm_tunes_with_cv(tmp_path: Path) -> None:
    train, valid, schema = cancer()
    candidate = Candidate.model_validate(
        {
            "name": "lgbm",
            "estimator": "lightgbm",
            "params": {"n_estimators": 30},
            "search": {
                "num_leaves": {"type": "int", "low": 4, "high": 31, "log": True},
                "learning_rate": {"type": "log", "low": 0.03, "high": 0.3},
                "min_child_samples": {"type": "int", "low": 5, "high": 30},
            },
        }
    )
    store = Store.open(tmp_path)
    result = tune(
        train,
        candidate,
        schema=schema,
        problem=CANCER,
        seed=0,
        metric=auc,
        greater_is_better=True,
        tuning=Tuning(trials=4),
        cv=CrossValidation(folds=3),
        storage=optuna_url(store.engine.url.render_as_string(hide_password=False)),
        study_name="cancer.lgbm",
    )
    store.close()
    assert result.complete + result.pruned == 4 and result.failed == 0
    assert {"num_leaves", "learning_rate", "min_child_samples"} <= set(result.best_params)
    fit = fit_candidate(
        train, candidate, schema=schema, problem=CANCER, seed=0, overrides=result.best_params
    )
    assert type(fit.model.steps[-1][1]).__name__ == "LGBMClassifier"
    valid_auc = auc(
        valid["malignant"].to_numpy(), predictions("binary", fit.model, valid[fit.features], True)
    )
    assert valid_auc > 0.95


def test_pruned_trials_show_as_pruned_with_the_score_they_stopped_at(tmp_path: Path) -> None:
    """Enough trials past the pruner's 5 startup trials that some really are pruned,
    through `mlcycle run` and `mlcycle runs list` (random sampling keeps poor C's coming)."""
    rng = np.random.default_rng(13)
    X = rng.normal(size=(2000, 5))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(1, 6)])
    frame["label"] = rng.random(len(frame)) < 1 / (1 + np.exp(-(X @ [1.0, 0.8, 0.5, 0.3, 0.2])))
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    spec = {
        "project": "synth",
        "problem": {"task": "binary", "target": "label", "positive_label": True},
        "data": {"source": {"path": "data.parquet"}},
        "prepare": {"split": {"strategy": "random"}},
        "train": {
            "seed": 42,
            "cv": {"folds": 3},
            "tuning": {"trials": 12, "sampler": "random"},
            "candidates": [
                {
                    "name": "lr",
                    "estimator": "logistic_regression",
                    "search": {"C": {"type": "log", "low": 1e-5, "high": 10}},
                }
            ],
        },
    }
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    mlcycle = str(Path(sys.executable).parent / "mlcycle")

    def cli(*args: str) -> str:
        done = subprocess.run(
            [mlcycle, *args], cwd=tmp_path, env=env, text=True, capture_output=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cli("run", "--until", "train")
    trials = [
        r for r in json.loads(cli("runs", "list", "--json")) if r["tags"].get("role") == "trial"
    ]
    assert len(trials) == 12
    pruned = [r for r in trials if r["status"] == "pruned"]
    assert pruned, [r["status"] for r in trials]
    assert {r["status"] for r in trials} == {"pruned", "finished"}
    for run in pruned:
        assert run["tags"]["state"] == "pruned"
        assert 0.5 < run["metrics"]["pruned_at_roc_auc"] <= 1
        assert int(run["tags"]["pruned_at_fold"]) >= 1  # the pruner waits one fold (warm-up)
        assert "objective_roc_auc" not in run["metrics"]
    table = cli("runs", "list")
    assert "pruned" in table
