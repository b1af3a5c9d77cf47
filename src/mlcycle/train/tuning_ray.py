"""The Ray backend of tuning (``train.tuning.backend: ray``): each trial's objective in a Ray task.

This process keeps the one sampler and asks it for each trial's parameters, as
``study.optimize`` does; a task loads the same stored study, runs the trial
(its fold reports and pruning go through the study storage, as they do
locally), and this process records the outcome. Optuna trials as Ray tasks
rather than Ray Tune with ``OptunaSearch``: the study stays the one in the
store (an interrupted tuning resumes from it, whichever backend ran it), the
median pruner and the trial tracking work unchanged, and with one worker the
trials are those of the local backend, one for one. Imported only for that
backend (``mlcycle.ray_cluster`` imports the optional ``ray``).

Example:
    >>> optimize_on_ray(study, objective, storage_url, tuning, n_trials=20)
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcycle.errors import BadInput
from mlcycle.spec import Tuning
from mlcycle.train.trials import TRIAL_ERRORS, Objective, TrialReport, open_storage, suggest


@dataclass
class _RayOutcome:
    """What a trial's Ray task sends back: how it ended, its report and its predictions."""

    state: str  # complete | pruned | fail
    value: float | None
    report: TrialReport | None
    oof: np.ndarray | None
    error: BaseException | None = None  # anything but a caught error: re-raised here


def optimize_on_ray(
    study: Any, objective: Objective, storage: str | None, tuning: Tuning, n_trials: int | None
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
        shipped = ray.put(objective)  # once, for every trial (see Objective.__getstate__)
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
    objective: Objective, storage: str, study_name: str, pruner: Any, trial_id: int
) -> _RayOutcome:
    """Run one asked trial in a Ray worker against the stored study (reports, pruning)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The parameters were suggested by the caller: this sampler is never asked.
    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(storage),
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
    except TRIAL_ERRORS:
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
