"""Experiment tracking, shaped like the calls people know from MLflow, and much cheaper.

The store is the project's (the folder holding ``mlcycle.yaml``, found from the
working directory upwards, or ``MLCYCLE_SPEC``), else ``./.mlcycle``;
``MLCYCLE_STORE_URL`` points it at any SQLAlchemy database.

Example:
    >>> import mlcycle
    >>> with mlcycle.start_run(name="lr-0.1", params={"lr": 0.1}) as run:
    ...     for epoch in range(3):
    ...         mlcycle.log_metrics({"loss": 1 / (epoch + 1)}, step=epoch)
    ...     mlcycle.set_tags({"note": "first try"})
    >>> mlcycle.search_runs(filter="params.lr = '0.1'")[0].metrics["loss"]
    0.3333333333333333
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlcycle.errors import BadInput
from mlcycle.store import Store
from mlcycle.store import tables as t
from mlcycle.store.owners import pid_alive
from mlcycle.train.tracking import query
from mlcycle.train.tracking.process import HOST
from mlcycle.train.tracking.query import RunView
from mlcycle.train.tracking.writer import PID_TAG, Run, Tracker, split_git_sha

__all__ = [
    "Run",
    "RunView",
    "Tracker",
    "active_run",
    "end_run",
    "flush",
    "get_run",
    "get_tracker",
    "log_artifact",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "metric_history",
    "reap_dead_runs",
    "search_runs",
    "set_tag",
    "set_tags",
    "split_git_sha",
    "start_run",
]

_trackers: dict[tuple[str, str], Tracker] = {}
_lock = threading.Lock()


def default_base_dir() -> Path:
    """The project folder (``MLCYCLE_SPEC`` or the nearest mlcycle.yaml upwards), else cwd."""
    spec = os.environ.get("MLCYCLE_SPEC")
    if spec:
        path = Path(spec)
        return (path if path.is_dir() else path.parent).resolve()
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "mlcycle.yaml").is_file():
            return folder
    return cwd


def get_tracker(store: Store | Path | str | None = None) -> Tracker:
    """The tracker of a store (an open Store, a project folder, or the default one)."""
    if isinstance(store, Store):
        key = (str(store.home), str(store.engine.url))
        with _lock:
            if key not in _trackers:
                _trackers[key] = Tracker(store)
            return _trackers[key]
    base = Path(store) if store is not None else default_base_dir()
    key = (str(base.resolve()), os.environ.get("MLCYCLE_STORE_URL", ""))
    with _lock:
        if key not in _trackers:
            _trackers[key] = Tracker(Store.open(base))
        return _trackers[key]


def start_run(
    name: str | None = None,
    *,
    experiment: str = "default",
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    seed: int | None = None,
    dataset_id: str | None = None,
    spec_hash: str | None = None,
    parent: Run | str | None = None,
    store: Store | Path | str | None = None,
) -> Run:
    """Start a run (the thread's active run until it ends); use it in a ``with`` block.

    Example:
        >>> with mlcycle.start_run(name="baseline", experiment="churn", seed=7) as run:
        ...     mlcycle.log_metric("auc", 0.71)
    """
    return get_tracker(store).start_run(
        name,
        experiment=experiment,
        params=params,
        tags=tags,
        seed=seed,
        dataset_id=dataset_id,
        spec_hash=spec_hash,
        parent=parent,
    )


def active_run() -> Run | None:
    """This thread's innermost running run, if any."""
    for tracker in list(_trackers.values()):
        run = tracker.active_run()
        if run is not None:
            return run
    return None


def _current() -> Run:
    run = active_run()
    if run is None:
        raise BadInput(
            "no active run",
            "log_* and set_tags write to the run started by mlcycle.start_run()",
            "wrap the code in `with mlcycle.start_run():`",
        )
    return run


def end_run(status: str = "finished") -> None:
    """End this thread's active run."""
    _current().end(status)


def log_param(key: str, value: Any) -> None:
    _current().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    """Record hyperparameters of the active run."""
    _current().log_params(params)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record one metric value of the active run (buffered: about a microsecond)."""
    _current().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Record several metric values of the active run at one step."""
    _current().log_metrics(metrics, step)


def set_tag(key: str, value: Any) -> None:
    _current().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Label the active run; tags may be overwritten."""
    _current().set_tags(tags)


def log_artifact(path: str | Path, name: str | None = None) -> str:
    """Copy a file or folder into the store for the active run; return its artifact id."""
    return _current().log_artifact(path, name)


def flush() -> None:
    """Write every buffered row now (it happens by itself every second and at exit)."""
    for tracker in list(_trackers.values()):
        tracker.flush()


def search_runs(
    *,
    experiment: str | None = None,
    filter: str | None = None,
    order_by: str = "start_time desc",
    limit: int = 100,
    store: Store | Path | str | None = None,
) -> list[RunView]:
    """Runs matching a filter such as ``"metrics.auc > 0.8 and params.family = 'hgb'"``."""
    tracker = get_tracker(store)
    tracker.flush()
    return query.search_runs(
        tracker.engine, experiment=experiment, filter=filter, order_by=order_by, limit=limit
    )


def get_run(run_id: str, *, store: Store | Path | str | None = None) -> RunView:
    """One run (id, id prefix or name) with its params, latest metrics, tags and files."""
    tracker = get_tracker(store)
    tracker.flush()
    return query.get_run(tracker.engine, run_id)


def metric_history(
    run_id: str, key: str, *, store: Store | Path | str | None = None
) -> list[tuple[int, float, float]]:
    """(step, value, timestamp) of each point of one metric of a run."""
    tracker = get_tracker(store)
    tracker.flush()
    return query.metric_history(tracker.engine, query.resolve_run(tracker.engine, run_id), key)


def reap_dead_runs(store: Store) -> int:
    """Mark ``killed`` the runs of this host left ``running`` by a process that died; how many.

    A run's process is its ``mlcycle.pid`` tag; one killed outright (``kill -9``)
    never ended its runs. ``end_time`` stays empty: when it died is unknown.
    """
    pid = t.run_tags.c.value
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.runs.c.id, pid)
            .join(t.run_tags, t.run_tags.c.run_id == t.runs.c.id)
            .where(t.runs.c.status == "running", t.runs.c.host == HOST, t.run_tags.c.key == PID_TAG)
        ).all()
    dead = [str(r[0]) for r in rows if str(r[1]).isdigit() and not pid_alive(int(r[1]))]
    if dead:
        with store.engine.begin() as conn:
            conn.execute(
                t.runs.update()
                .where(t.runs.c.id.in_(dead), t.runs.c.status == "running")
                .values(status="killed")
            )
    return len(dead)
