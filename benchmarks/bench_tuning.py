"""Tuning overhead: 30 trials through mlcycle vs the same trials in a plain Optuna loop.

mlcycle's side is what the train step does: the study in the store (RDB storage
on SQLite, so it resumes), the schema-built preprocessing inside the pipeline,
5-fold CV, and a tracked run per trial. The plain side is what a person would
write: an in-memory study and ``cross_val_score`` on the same folds, with the
same seeded TPE sampler and search space, so both run the same trials.
Both are limited to one BLAS/OpenMP thread, so other load on the machine moves
them alike. Goal (issue 4): mlcycle at most 10% slower.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED = 0


def _data(rows: int) -> tuple[pd.DataFrame, Any, Any]:
    from sklearn.datasets import make_classification

    from mlcycle.data.infer import infer_schema
    from mlcycle.spec import Features, Problem

    X, y = make_classification(
        n_samples=rows, n_features=20, n_informative=8, random_state=SEED, flip_y=0.05
    )
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    df["y"] = y.astype(bool)
    problem = Problem(task="binary", target="y", positive_label=True, primary_metric="roc_auc")
    return df, problem, infer_schema(df, problem, Features())


SEARCH = {
    "learning_rate": {"type": "float", "low": 0.02, "high": 0.3, "log": True},
    "max_leaf_nodes": {"type": "int", "low": 8, "high": 48},
    "min_samples_leaf": {"type": "int", "low": 5, "high": 50},
}
FIXED = {"max_iter": 40, "early_stopping": False}


def _mlcycle(df: pd.DataFrame, problem: Any, schema: Any, trials: int) -> dict[str, Any]:
    import optuna
    from sklearn.metrics import roc_auc_score

    from mlcycle.spec import Candidate, CrossValidation, Tuning
    from mlcycle.store import Store
    from mlcycle.train.tracking import Tracker
    from mlcycle.train.tuning import TrialReport, optuna_url, tune

    folder = Path(tempfile.mkdtemp())
    store = Store.open(folder)
    tracker = Tracker(store)
    candidate = Candidate.model_validate(
        {"name": "hgb", "estimator": "hist_gradient_boosting", "params": FIXED, "search": SEARCH}
    )

    # Like the store's schema (Store.open above), the study database's schema is
    # made once per store (~1 s of Optuna creating its tables): not timed.
    url = optuna_url(store.engine.url.render_as_string(hide_password=False))
    optuna.storages.RDBStorage(url).engine.dispose()

    def on_trial(report: TrialReport) -> None:
        with tracker.start_run(f"hgb#{report.number}", tags={"role": "trial"}) as run:
            run.log_params(report.params)
            for i, s in enumerate(report.fold_scores):
                run.log_metric("cv_roc_auc", s, step=i)

    started = time.perf_counter()
    result = tune(
        df,
        candidate,
        schema=schema,
        problem=problem,
        seed=SEED,
        metric=lambda y, s: float(roc_auc_score(y, s)),
        greater_is_better=True,
        tuning=Tuning(trials=trials, pruning=False),
        cv=CrossValidation(kind="stratified", folds=5),
        storage=url,
        study_name="bench",
        # As the pipeline runs it: a tracked run per trial and the progress display
        # (plain lines when stderr is not a terminal).
        on_trial=on_trial,
        progress=True,
        metric_name="roc_auc",
    )
    tracker.flush()
    seconds = time.perf_counter() - started
    tracker.close()
    store.close()
    return {"seconds": seconds, "best_value": result.best_value, "trials": result.complete}


def _plain(df: pd.DataFrame, trials: int) -> dict[str, Any]:
    import optuna
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X = df.drop(columns=["y"]).to_numpy()
    y = df["y"].to_numpy()
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED)

    def objective(trial: Any) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 8, 48),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 50),
        }
        model = HistGradientBoostingClassifier(**FIXED, **params, random_state=SEED)
        return float(np.mean(cross_val_score(model, X, y, cv=folds, scoring="roc_auc")))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEED))
    study.optimize(objective, n_trials=trials)
    return {"seconds": time.perf_counter() - started, "best_value": study.best_value}


def run(quick: bool) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    # Best of 3 in full mode: one pair of runs on a shared 2-core machine swings ±10%.
    rows, trials, repeats = (1000, 10, 1) if quick else (3000, 30, 3)
    df, problem, schema = _data(rows)
    ours: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    with threadpool_limits(1):
        _plain(df.head(200), 2)  # warm imports for both sides
        for _ in range(repeats):
            plain.append(_plain(df, trials))
            ours.append(_mlcycle(df, problem, schema, trials))
    best_ours = min(r["seconds"] for r in ours)
    best_plain = min(r["seconds"] for r in plain)
    return {
        "rows": rows,
        "trials": trials,
        "folds": 5,
        "repeats": repeats,
        "mlcycle_seconds": [round(r["seconds"], 3) for r in ours],
        "plain_optuna_seconds": [round(r["seconds"], 3) for r in plain],
        "same_best_value": bool(abs(ours[0]["best_value"] - plain[0]["best_value"]) < 1e-9),
        "best_value": {"mlcycle": ours[0]["best_value"], "plain": plain[0]["best_value"]},
        "overhead": round(best_ours / best_plain - 1, 4),
        "goal_10pct_met": best_ours <= 1.10 * best_plain,
    }
