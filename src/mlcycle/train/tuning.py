"""Hyperparameter tuning with Optuna: seeded TPE, median pruning over folds, a budget of
trials and/or seconds, and the study kept in the store's database so an interrupted
tuning resumes where it stopped.

A trial's score is the mean over the cross-validation folds when ``train.cv`` is
set (reported fold by fold so the median pruner can stop a poor trial early),
else the score on the validation rows.

``tuning.backend: ray`` runs the trials as Ray tasks (see :func:`_optimize_on_ray`):
this process keeps the one sampler and asks it for each trial's parameters, as
``study.optimize`` does; a task loads the same stored study, runs the trial
(its fold reports and pruning go through the study storage, as they do
locally), and this process records the outcome. Optuna trials as Ray tasks
rather than Ray Tune with ``OptunaSearch``: the study stays the one in the
store (an interrupted tuning resumes from it, whichever backend ran it), the
median pruner and the trial tracking work unchanged, and with one worker the
trials are those of the local backend, one for one.

Example:
    >>> result = tune(train_df, candidate, schema=schema, problem=problem, seed=42,
    ...               metric=auc, greater_is_better=True, tuning=Tuning(trials=30),
    ...               cv=CrossValidation(folds=5), storage=optuna_url(store_url),
    ...               study_name="flights.hgb.3fa2")
    >>> result.best_params
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import BadInput
from mlcycle.schema import Schema
from mlcycle.spec import Candidate, CrossValidation, Problem, SearchParam, Tuning
from mlcycle.train.cv import Metric, PreparedFolds, cross_validate, folds
from mlcycle.train.fit import build_pipeline, check_training_data, predictions, target_values
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


def _storage(url: str | None) -> Any:
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
    objective = _Objective(
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
            if tuning.backend == "ray":
                _optimize_on_ray(study, objective, storage, tuning, remaining)
            else:
                study.optimize(
                    objective,
                    n_trials=remaining,
                    timeout=tuning.seconds,
                    n_jobs=tuning.n_jobs,
                    catch=_CATCH,
                )
    return _result(study, objective, resumed)


# A parameter combination the estimator rejects fails that trial only.
_CATCH = (ValueError, ArithmeticError)


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
        storage=_storage(storage),
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


@dataclass
class _Objective:
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


def _result(study: Any, objective: _Objective, resumed: int) -> TuningResult:
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


# --- the Ray backend -------------------------------------------------------------------


@dataclass
class _RayOutcome:
    """What a trial's Ray task sends back: how it ended, its report and its predictions."""

    state: str  # complete | pruned | fail
    value: float | None
    report: TrialReport | None
    oof: np.ndarray | None
    error: BaseException | None = None  # anything but a caught error: re-raised here


def _optimize_on_ray(
    study: Any, objective: _Objective, storage: str | None, tuning: Tuning, n_trials: int | None
) -> None:
    """``study.optimize`` with each trial's objective in a Ray task, ``workers`` at once.

    The sampler stays here: each trial is asked for and its parameters suggested
    in this process, in the order ``study.optimize`` would (so one worker gives
    the local backend's trials), then a task runs it against the stored study.
    """
    import optuna

    from mlcycle.ray_cluster import cluster_cpus, connected

    if storage is None:
        raise BadInput(
            "train.tuning.backend ray needs a stored study",
            "Ray tasks share the trials through the study storage",
            "tune inside a project (its store keeps the studies), or pass storage=",
        )
    with connected() as ray:
        _check_storage_reachable(ray, storage)
        # n_jobs set in the spec caps the trials at once; else every CPU of the cluster.
        workers = tuning.n_jobs if "n_jobs" in tuning.model_fields_set else cluster_cpus(ray)
        shipped = ray.put(objective)  # once, for every trial (see _Objective.__getstate__)
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_trial)
        started = time.monotonic()
        asked = 0
        in_flight: dict[Any, int] = {}
        while True:
            while len(in_flight) < workers and (n_trials is None or asked < n_trials):
                if tuning.seconds is not None and time.monotonic() - started > tuning.seconds:
                    break
                trial = study.ask()
                for name, space in objective.candidate.search.items():
                    suggest(trial, name, space)
                ref = task.remote(shipped, storage, study.study_name, study.pruner, trial._trial_id)
                in_flight[ref] = trial.number
                asked += 1
            if not in_flight:
                return
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            number = in_flight.pop(ready[0])
            outcome: _RayOutcome = ray.get(ready[0])
            if outcome.state == "complete":
                assert outcome.value is not None
                study.tell(number, outcome.value)
                objective.keep_if_best(outcome.value, outcome.oof)
            else:
                state = optuna.trial.TrialState.PRUNED if outcome.state == "pruned" else None
                study.tell(number, state=state or optuna.trial.TrialState.FAIL)
            if outcome.report is not None:
                objective.finished(outcome.report)
            if outcome.error is not None:
                for pending in in_flight:
                    ray.cancel(pending)
                raise outcome.error


def _ray_trial(
    objective: _Objective, storage: str, study_name: str, pruner: Any, trial_id: int
) -> _RayOutcome:
    """Run one asked trial in a Ray worker against the stored study (reports, pruning)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The parameters were suggested by the caller: this sampler is never asked.
    study = optuna.load_study(
        study_name=study_name,
        storage=_storage(storage),
        sampler=optuna.samplers.RandomSampler(),
        pruner=pruner,
    )
    trial = optuna.trial.Trial(study, trial_id)
    trial.set_user_attr("worker_pid", os.getpid())
    reports: list[TrialReport] = []
    objective.on_trial = reports.append  # the objective reports every trial, however it ends
    state, value, error = "complete", None, None
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        state = "pruned"
    except _CATCH:
        state = "fail"
    except Exception as exc:  # not a trial's failure: the caller stops the tuning with it
        state, error = "fail", exc
    oof = objective.best_oof if state == "complete" else None
    return _RayOutcome(state, value, reports[0] if reports else None, oof, error)


def _check_storage_reachable(ray: Any, storage: str) -> None:
    """Refuse a SQLite study on a cluster of several nodes: the others cannot open the file."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if storage.startswith("sqlite") and len(nodes) > 1:
        raise BadInput(
            f"the Ray cluster has {len(nodes)} nodes but the study is a SQLite file on this one",
            "every trial's task reads and writes the study storage",
            "use a PostgreSQL store (MLCYCLE_STORE_URL=postgresql://…) for a multi-node cluster",
        )
