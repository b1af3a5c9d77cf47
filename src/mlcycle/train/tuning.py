"""Hyperparameter tuning with Optuna: seeded TPE, median pruning over folds, a budget of
trials and/or seconds, and the study kept in the store's database so an interrupted
tuning resumes where it stopped.

A trial's score is the mean over the cross-validation folds when ``train.cv`` is
set (reported fold by fold so the median pruner can stop a poor trial early),
else the score on the validation rows.

One trial (the objective, its report, the search-space sampling) is
``trials.py``; ``tuning.backend: ray`` runs the trials as Ray tasks
(``tuning_ray.py``, imported only then).

Example:
    >>> result = tune(train_df, candidate, schema=schema, problem=problem, seed=42,
    ...               metric=auc, greater_is_better=True, tuning=Tuning(trials=30),
    ...               cv=CrossValidation(folds=5), storage=optuna_url(store_url),
    ...               study_name="flights.hgb.3fa2")
    >>> result.best_params
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import BadInput
from mlcycle.schema import Schema
from mlcycle.spec import Candidate, CrossValidation, Problem, Tuning
from mlcycle.train.cv import Metric, folds
from mlcycle.train.fit import build_pipeline, check_training_data, target_values
from mlcycle.train.progress import TuningProgress
from mlcycle.train.trials import (
    TRIAL_ERRORS,
    Objective,
    TrialCallback,
    TrialReport,
    open_storage,
    suggest,
)

__all__ = ["TrialCallback", "TrialReport", "TuningResult", "optuna_url", "suggest", "tune"]


@dataclass
class TuningResult:
    """What a tuning found: the best params and score, and how its trials ended."""

    candidate: str
    study_name: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    complete: int
    pruned: int
    failed: int
    resumed: int = 0  # finished trials found in the store from an earlier, interrupted tuning
    best_oof: np.ndarray | None = field(default=None, repr=False)


def optuna_url(store_url: str) -> str:
    """Where a store keeps its Optuna studies.

    Optuna versions its tables with Alembic in a table named ``alembic_version``,
    the same name the store's own migrations use, so the two cannot share one
    namespace: on SQLite the studies live in a sibling file (``mlcycle.optuna.db``),
    on PostgreSQL in a schema of the same database (``<schema>_optuna``).

    Example:
        >>> optuna_url("sqlite:////project/.mlcycle/mlcycle.db")
        'sqlite:////project/.mlcycle/mlcycle.optuna.db'
    """
    import sqlalchemy as sa

    url = sa.engine.make_url(store_url)
    if url.drivername.startswith("sqlite"):
        if not url.database or url.database == ":memory:":
            raise BadInput(
                "tuning cannot persist studies in an in-memory SQLite store",
                "an interrupted tuning resumes from the studies kept on disk",
                "use a file store (the default .mlcycle folder) or PostgreSQL",
            )
        database = str(Path(url.database).with_suffix(".optuna.db"))
        return url.set(database=database).render_as_string(hide_password=False)
    if url.drivername.startswith("postgresql"):
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        options = str(url.query.get("options", ""))
        match = re.search(r"search_path=([\w$]+)", options)
        schema = f"{match.group(1) if match else 'mlcycle'}_optuna"
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        finally:
            engine.dispose()
        others = re.sub(r"-c\s*search_path=[\w$]+", "", options).strip()
        url = url.update_query_dict({"options": f"{others} -csearch_path={schema}".strip()})
        return url.render_as_string(hide_password=False)
    return store_url


def tune(
    train: pd.DataFrame,
    candidate: Candidate,
    *,
    schema: Schema,
    problem: Problem,
    seed: int,
    metric: Metric,
    greater_is_better: bool,
    tuning: Tuning,
    cv: CrossValidation | None = None,
    valid: pd.DataFrame | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    on_trial: TrialCallback | None = None,
    progress: bool = False,
    metric_name: str = "score",
) -> TuningResult:
    """Tune a candidate's search space; return the best params (fixed params included).

    ``progress`` shows the trials on stderr (:class:`~mlcycle.train.progress.TuningProgress`:
    a Rich display on a terminal, a plain line every few seconds otherwise).

    Example:
        >>> result = tune(train, candidate, schema=schema, problem=problem, seed=0,
        ...               metric=auc, greater_is_better=True, tuning=Tuning(trials=20),
        ...               cv=CrossValidation(folds=3))
        >>> sorted(result.best_params)
        ['learning_rate', 'max_depth']
    """
    if not candidate.search:
        raise BadInput(
            f"candidate '{candidate.name}' has no search space",
            "tuning needs train.candidates[].search",
            "add a search space or fit the candidate without tuning",
        )
    if cv is None and valid is None:
        raise BadInput(
            "tuning needs validation rows or cross-validation",
            "a trial is scored on one or the other",
            "set train.cv or pass the validation rows",
        )
    features = check_training_data(train, schema=schema, problem=problem)
    # Build once with the low ends of the ranges: a bad estimator or search space
    # fails here, before any trial, with the candidate's name in the message.
    build_pipeline(candidate, schema=schema, problem=problem, seed=seed, features=features)
    split = folds(train, cv, problem=problem, seed=seed) if cv is not None else None
    y_valid = target_values(valid, problem) if valid is not None else None
    study = _open_study(tuning, cv, storage, study_name, seed, greater_is_better)
    resumed, best_before = _resume(study, greater_is_better)
    remaining = None if tuning.trials is None else max(tuning.trials - resumed, 0)
    display = TuningProgress(
        candidate.name,
        metric=metric_name,
        trials=tuning.trials,
        seconds=tuning.seconds,
        greater_is_better=greater_is_better,
        resumed=resumed,
        best=best_before,
        enabled=progress,
    )
    objective = Objective(
        train=train,
        candidate=candidate,
        schema=schema,
        problem=problem,
        seed=seed,
        features=features,
        metric=metric,
        greater_is_better=greater_is_better,
        cv=cv,
        split=split,
        valid=valid,
        y_valid=y_valid,
        display=display,
        on_trial=on_trial,
    )
    if remaining != 0:
        with display:
            _run_trials(study, objective, storage, tuning, remaining)
    return _result(study, objective, resumed)


def _run_trials(
    study: Any, objective: Objective, storage: str | None, tuning: Tuning, n_trials: int | None
) -> None:
    """Up to ``n_trials`` more trials (``None``: until the time budget) on the spec's backend."""
    if tuning.backend == "ray":
        from mlcycle.train.tuning_ray import optimize_on_ray  # imports the optional ray

        optimize_on_ray(study, objective, storage, tuning, n_trials)
        return
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=tuning.seconds,
        n_jobs=tuning.n_jobs,
        catch=TRIAL_ERRORS,
    )


def _open_study(
    tuning: Tuning,
    cv: CrossValidation | None,
    storage: str | None,
    study_name: str | None,
    seed: int,
    greater_is_better: bool,
) -> Any:
    """The study, created or (same name in the same storage) loaded to resume."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler: Any = (
        optuna.samplers.TPESampler(seed=seed)
        if tuning.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    # Pruning compares a trial's running score fold by fold: without folds there
    # is nothing to compare until the trial is over.
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
        if tuning.pruning and cv is not None
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        storage=open_storage(storage),
        study_name=study_name,
        sampler=sampler,
        pruner=pruner,
        direction="maximize" if greater_is_better else "minimize",
        load_if_exists=True,
    )


def _resume(study: Any, greater_is_better: bool) -> tuple[int, tuple[float, int] | None]:
    """How many trials an earlier tuning finished, and its best (score, trial number)."""
    from optuna.trial import TrialState

    # Trials left RUNNING by a killed process will never finish: mark them failed
    # (one tuner per study at a time) and count the finished ones against the budget.
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    scored = [
        (float(t.value), t.number)
        for t in done
        if t.state == TrialState.COMPLETE and t.value is not None
    ]
    best_before = None
    if scored:
        best_before = max(scored) if greater_is_better else min(scored)
    return len(done), best_before


def _result(study: Any, objective: Objective, resumed: int) -> TuningResult:
    """The best trial's params (fixed ones included) and the study's counts."""
    from optuna.trial import TrialState

    candidate = objective.candidate
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise BadInput(
            f"tuning '{candidate.name}' finished no trial",
            "every trial failed or was pruned, or the time budget ran out before one finished",
            "raise train.tuning.seconds/trials or check the search space",
        )
    best = study.best_trial
    best_params = {
        **build_pipeline(
            candidate,
            schema=objective.schema,
            problem=objective.problem,
            seed=objective.seed,
            features=objective.features,
            overrides=dict(best.params),
        )[2]
    }
    return TuningResult(
        candidate=candidate.name,
        study_name=study.study_name,
        best_params=best_params,
        best_value=float(best.value if best.value is not None else np.nan),
        best_trial=best.number,
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        resumed=resumed,
        best_oof=objective.best_oof,
    )
