"""Read-only listings over the store's tables, as typed records: pipeline runs with
their steps, dataset versions with their validation status, the latest values of
tracked runs, and monitor windows.

These are the lists the dashboard (and any other reader) shows; they live beside
the tables they read so no route or template writes SQL, and they read only what
a list needs (a dataset version's record without its frame, a monitor window's
stored metrics without opening a ``Monitor``).

Example:
    >>> [s.step for s in pipeline_runs(store, 1)[0].steps][:2]
    ['ingest', 'validate']
    >>> dataset_versions(store)[0].status
    'valid'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from mlcycle.store import Store
from mlcycle.store import tables as t

# --- pipeline runs ---------------------------------------------------------------------


@dataclass(frozen=True)
class StepRun:
    """One step of a pipeline run: status, seconds, error, its summary and the
    artifacts it produced (or took from the cache)."""

    step: str
    status: str
    started_at: str
    ended_at: str | None
    duration_s: float | None
    error: str | None
    summary: dict[str, Any]
    artifacts: dict[str, str]


@dataclass(frozen=True)
class PipelineRun:
    """One run of the lifecycle pipeline and its steps in the order they ran."""

    id: str
    started_at: str
    ended_at: str | None
    status: str
    spec_hash: str
    git_sha: str | None
    message: str | None
    host: str | None
    steps: list[StepRun] = field(default_factory=list)

    @property
    def cached(self) -> int:
        """How many steps were taken from the cache."""
        return sum(1 for s in self.steps if s.status == "cached")

    @property
    def seconds(self) -> float:
        """The steps' seconds, summed."""
        return sum(s.duration_s or 0.0 for s in self.steps)


def pipeline_runs(store: Store, limit: int = 20) -> list[PipelineRun]:
    """The newest ``limit`` pipeline runs, newest first, each with its steps.

    Two queries whatever the number of runs: the runs, then all their steps
    (joined to the step cache for the artifacts each produced).

    Example:
        >>> run = pipeline_runs(store, 1)[0]
        >>> run.status, run.cached
        ('succeeded', 7)
    """
    with store.engine.connect() as conn:
        runs = conn.execute(
            sa.select(t.pipeline_runs).order_by(t.pipeline_runs.c.started_at.desc()).limit(limit)
        ).mappings().all()  # fmt: skip
        ids = [r["id"] for r in runs]
        steps = (
            conn.execute(
                sa.select(t.step_runs, t.step_cache.c.outputs.label("artifacts"))
                .select_from(
                    t.step_runs.outerjoin(
                        t.step_cache, t.step_cache.c.cache_key == t.step_runs.c.cache_key
                    )
                )
                .where(t.step_runs.c.pipeline_run_id.in_(ids))
                .order_by(t.step_runs.c.id)
            )
            .mappings()
            .all()
            if ids
            else []
        )
    by_run: dict[str, list[StepRun]] = {i: [] for i in ids}
    for s in steps:
        # The step's summary is in step_runs.outputs; the artifacts it produced (or took
        # from cache) are its cache entry's outputs, as in queries.run_outputs.
        by_run[s["pipeline_run_id"]].append(
            StepRun(
                step=s["step"],
                status=s["status"],
                started_at=s["started_at"],
                ended_at=s["ended_at"],
                duration_s=s["duration_s"],
                error=s["error"],
                summary=json.loads(s["outputs"] or "{}"),
                artifacts=json.loads(s["artifacts"]) if s["artifacts"] else {},
            )
        )
    return [
        PipelineRun(
            id=r["id"],
            started_at=r["started_at"],
            ended_at=r["ended_at"],
            status=r["status"],
            spec_hash=r["spec_hash"],
            git_sha=r["git_sha"],
            message=r["message"],
            host=r["host"],
            steps=by_run[r["id"]],
        )
        for r in runs
    ]


# --- dataset versions ------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetVersionRow:
    """A dataset version as a list shows it: size, source, and whether it may be used.

    ``status`` is ``valid``, ``invalid`` (quarantined: ``reason`` says why) or
    ``unvalidated``; ``validation_id`` is the validation report's artifact, if any.
    """

    id: str
    created_at: str
    rows: int
    columns: int
    partitions: int
    source: str
    source_name: str
    status: str
    reason: str | None
    validation_id: str | None


def dataset_versions(store: Store, ids: Sequence[str] | None = None) -> list[DatasetVersionRow]:
    """Every dataset version (or those of ``ids``), newest first, with its status.

    Example:
        >>> [(v.rows, v.status) for v in dataset_versions(store)]
        [(1542, 'invalid'), (1592, 'valid')]
    """
    a, s = t.artifacts, t.dataset_status
    query = (
        sa.select(a.c.id, a.c.created_at, a.c.record, s.c.status, s.c.reason, s.c.validation_id)
        .select_from(a.outerjoin(s, s.c.dataset_id == a.c.id))
        .where(a.c.kind == "dataset")
        .order_by(a.c.created_at.desc(), a.c.id)
    )
    if ids is not None:
        query = query.where(a.c.id.in_(list(ids)))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for artifact_id, created, record, status, reason, validation_id in rows:
        rec = json.loads(record)
        out.append(
            DatasetVersionRow(
                id=artifact_id,
                created_at=created,
                rows=int(rec["rows"]),
                columns=len(rec["columns"]),
                partitions=len(rec.get("partitions", [])),
                source=rec["source"],
                source_name=rec.get("source_name", "main"),
                status=status or "unvalidated",
                reason=reason,
                validation_id=validation_id,
            )
        )
    return out


def validation_of(store: Store, dataset_id: str) -> str | None:
    """The validation report of a dataset version: its status row's, else any made from it.

    Example:
        >>> store.kind(validation_of(store, dataset_id))
        'validation'
    """
    a, e, s = t.artifacts, t.edges, t.dataset_status
    with store.engine.connect() as conn:
        chosen = conn.execute(
            sa.select(s.c.validation_id).where(s.c.dataset_id == dataset_id)
        ).scalar()
        if chosen:
            return str(chosen)
        row = conn.execute(
            sa.select(e.c.child)
            .join(a, a.c.id == e.c.child)
            .where(e.c.parent == dataset_id, a.c.kind == "validation")
            .order_by(a.c.created_at.desc())
            .limit(1)
        ).first()
    return str(row[0]) if row else None


# --- tracked runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class RunValues:
    """A tracked run's params, latest metric values and tags."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def run_values(store: Store, run_ids: Sequence[str]) -> dict[str, RunValues]:
    """Params, latest metrics and tags of these runs only (three indexed lookups).

    For one page of a runs table: the tracking search fills every run it finds,
    a page needs only its own.

    Example:
        >>> run_values(store, [run_id])[run_id].metrics["valid_roc_auc"]
        0.71
    """
    found = {run_id: RunValues() for run_id in run_ids}
    if not found:
        return found
    m = t.run_latest_metrics
    with store.engine.connect() as conn:
        for kind, table, value in (
            ("metrics", m, m.c.value),
            ("params", t.run_params, t.run_params.c.value),
            ("tags", t.run_tags, t.run_tags.c.value),
        ):
            for run_id, key, val in conn.execute(
                sa.select(table.c.run_id, table.c.key, value).where(table.c.run_id.in_(list(found)))
            ):
                getattr(found[run_id], kind)[key] = val
    return found


def experiments(store: Store) -> list[str]:
    """The experiments that have tracked runs, sorted (a short scan of an index).

    Example:
        >>> experiments(store)
        ['flights']
    """
    with store.engine.connect() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                sa.select(t.runs.c.experiment).distinct().order_by(t.runs.c.experiment)
            )
        ]


# --- monitoring ------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorWindow:
    """One stored monitor window of a model: its span, rows and the metrics computed."""

    key: str
    version: int | None
    rows: int
    start: str
    end: str
    metrics: dict[str, Any]


def monitored_models(store: Store) -> list[str]:
    """Models that have monitor windows or alerts, sorted.

    Example:
        >>> monitored_models(store)
        ['flights']
    """
    with store.engine.connect() as conn:
        names = {
            str(r[0]) for r in conn.execute(sa.select(t.monitor_windows.c.model).distinct())
        } | {str(r[0]) for r in conn.execute(sa.select(t.monitor_alerts.c.model).distinct())}
    return sorted(names)


def monitor_windows(store: Store, model: str) -> list[MonitorWindow]:
    """Every stored window of ``model`` in time order (no reference rows are loaded).

    Example:
        >>> [w.key for w in monitor_windows(store, "flights")][:2]
        ['2013-07', '2013-08']
    """
    w = t.monitor_windows
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(w).where(w.c.model == model).order_by(w.c.start, w.c.window)
        ).mappings().all()  # fmt: skip
    return [
        MonitorWindow(
            key=r["window"],
            version=r["model_version"],
            rows=int(r["rows"]),
            start=r["start"],
            end=r["end"],
            metrics=json.loads(r["metrics"]),
        )
        for r in rows
    ]
