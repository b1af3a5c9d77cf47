"""One tuning trial: the candidate built with the trial's parameters, scored, reported.

What a trial needs wherever it runs: in this process (``study.optimize``, one
thread per job) or in a Ray task (``tuning_ray.py``), which receives the
:class:`Objective` pickled, without this process's display and callback.
``tuning.py`` runs the study around it.

Example:
    >>> objective = Objective(train=train, candidate=candidate, ...)
    >>> study.optimize(objective, n_trials=20, catch=TRIAL_ERRORS)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.schema import Schema
from mlcycle.spec import Candidate, CrossValidation, Problem, SearchParam
from mlcycle.train.cv import Metric, PreparedFolds, cross_validate
from mlcycle.train.fit import build_pipeline, predictions, target_values
from mlcycle.train.progress import TuningProgress


@dataclass
class TrialReport:
    """One finished trial: its params, score (None unless complete), state and folds."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str  # complete | pruned | fail
    # Complete: each fold's score. Pruned: the running means reported to the pruner,
    # the last being the one it stopped the trial at.
    fold_scores: list[float]
    seconds: float


# Called after each trial (e.g. to track it as a run).
TrialCallback = Callable[[TrialReport], None]

# A parameter combination the estimator rejects fails that trial only.
TRIAL_ERRORS = (ValueError, ArithmeticError)


def suggest(trial: Any, name: str, space: SearchParam) -> Any:
    """One value from a search parameter (Optuna's suggest_* API).

    Example:
        >>> suggest(trial, "max_depth", SearchParam(type="int", low=2, high=8))
        5
    """
    if space.type == "categorical":
        return trial.suggest_categorical(name, space.choices)
    assert space.low is not None and space.high is not None
    log = space.log or space.type == "log"
    if space.type == "int":
        step = int(space.step) if space.step and not log else 1
        return trial.suggest_int(name, int(space.low), int(space.high), step=step, log=log)
    return trial.suggest_float(
        name, space.low, space.high, log=log, step=None if log else space.step
    )


def open_storage(url: str | None) -> Any:
    """The Optuna storage of a study URL (SQLite: WAL, waits for its lock); None: in memory.

    Example:
        >>> open_storage("sqlite:///.mlcycle/mlcycle.optuna.db").engine.url.drivername
        'sqlite'
    """
    import optuna

    if url is None:
        return None
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Parallel trials write from several threads; wait for the lock rather than fail.
        kwargs = {"connect_args": {"timeout": 60}}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    if url.startswith("sqlite"):
        import sqlalchemy as sa

        def pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL: readers never block the trials' writes; NORMAL: no fsync per
            # commit (a trial makes a dozen), still safe against a process crash.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        sa.event.listen(storage.engine, "connect", pragmas)
        storage.engine.dispose()  # reconnect with the pragmas
    return storage


@dataclass
class Objective:
    """One trial: build the candidate with the trial's params, score it, report it.

    With several jobs, trials run on threads of one process: they share the
    prepared folds and the best out-of-fold predictions kept here.
    """

    train: pd.DataFrame
    candidate: Candidate
    schema: Schema
    problem: Problem
    seed: int
    features: list[str]
    metric: Metric
    greater_is_better: bool
    cv: CrossValidation | None
    split: list[tuple[np.ndarray, np.ndarray]] | None
    valid: pd.DataFrame | None
    y_valid: np.ndarray | None
    display: TuningProgress | None
    on_trial: TrialCallback | None
    prepared: PreparedFolds = field(default_factory=PreparedFolds)
    best_value: float | None = None
    best_oof: np.ndarray | None = None

    def __call__(self, trial: Any) -> float:
        import optuna

        started = time.perf_counter()
        overrides = {
            name: suggest(trial, name, space) for name, space in self.candidate.search.items()
        }
        pipeline, _, params = build_pipeline(
            self.candidate,
            schema=self.schema,
            problem=self.problem,
            seed=self.seed,
            features=self.features,
            overrides=overrides,
        )
        fold_scores: list[float] = []
        state = "fail"
        value: float | None = None
        try:
            if self.cv is not None:
                value = self._cross_validate(trial, pipeline, self.cv, fold_scores)
            else:
                value = self._score_on_valid(pipeline)
            state = "complete"
            return value
        except optuna.TrialPruned:
            state = "pruned"
            raise
        finally:
            report = TrialReport(
                trial.number,
                params,
                value,
                state,
                list(fold_scores),
                time.perf_counter() - started,
            )
            self.finished(report)

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to Ray workers: without this process's display, callback and fold
        # cache (it holds a lock); a worker starts with an empty cache.
        state = dict(self.__dict__)
        state.update(display=None, on_trial=None, prepared=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, prepared=PreparedFolds())

    def finished(self, report: TrialReport) -> None:
        """Show and hand on a finished trial (a Ray trial: here, once its task returned)."""
        if self.display is not None:
            self.display.trial(report)
        if self.on_trial is not None:
            self.on_trial(report)

    def keep_if_best(self, value: float, oof: np.ndarray | None) -> None:
        """Keep the out-of-fold predictions of the best trial so far."""
        best = self.best_value
        if best is None or (value > best if self.greater_is_better else value < best):
            self.best_value, self.best_oof = value, oof

    def _cross_validate(
        self, trial: Any, pipeline: Any, cv: CrossValidation, fold_scores: list[float]
    ) -> float:
        """The mean over the folds, reported fold by fold so a poor trial is pruned early."""
        import optuna

        def on_fold(i: int, running: float) -> None:
            fold_scores.append(running)
            trial.report(running, i)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = cross_validate(
            pipeline,
            self.train,
            cv=cv,
            problem=self.problem,
            features=self.features,
            metric=self.metric,
            seed=self.seed,
            on_fold=on_fold,
            split=self.split,
            prepared=self.prepared,
        )
        fold_scores[:] = result.fold_scores
        self.keep_if_best(result.mean, result.oof)
        return result.mean

    def _score_on_valid(self, pipeline: Any) -> float:
        """The score on the validation rows of the pipeline fitted on all training rows."""
        assert self.valid is not None and self.y_valid is not None
        pipeline.fit(self.train[self.features], target_values(self.train, self.problem))
        scores = predictions(
            self.problem.task, pipeline, self.valid[self.features], self.problem.positive_label
        )
        return float(self.metric(self.y_valid, scores))
