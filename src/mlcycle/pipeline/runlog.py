"""The pipeline's own records: its runs, each step's run, and the step cache.

Apart from the catalog because it is a different thing: the catalog stores
what the lifecycle makes (typed artifacts); the run log stores how it ran
(which run, which step, ran or cached or killed, by which process).

Example:
    >>> log = RunLog(store)
    >>> log.reap()          # mark runs of dead processes on this host 'killed'
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa

from mlcycle.store import Store, now
from mlcycle.store import tables as t
from mlcycle.store.owners import HOST, pid_alive


class RunLog:
    """The pipeline's own records: its runs, each step's run, and the step cache.

    The tables (``pipeline_runs``, ``step_runs``, ``step_cache``) are read by
    ``mlcycle lineage`` and the dashboard; the runner writes them only here.

    Example:
        >>> log = RunLog(store)
        >>> log.start(run_id, spec_hash=spec.hash(), git_sha=None)
        >>> log.cached(key)   # (outputs, summary) of an earlier run of the same step, or None
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def start(self, run_id: str, *, spec_hash: str, git_sha: str | None) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                t.pipeline_runs.insert().values(
                    id=run_id,
                    started_at=now(),
                    status="running",
                    spec_hash=spec_hash,
                    git_sha=git_sha,
                    # Who runs it: a later start marks it killed once this pid is gone.
                    pid=os.getpid(),
                    host=HOST,
                )
            )

    def reap(self) -> int:
        """Mark ``running`` runs of this host whose process is gone as ``killed``; how many.

        A process killed with ``kill -9`` (or a crashed machine's power cut) never
        finishes its run; the next start tells it from a live one by its pid.
        """
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.pipeline_runs.c.id, t.pipeline_runs.c.pid).where(
                    t.pipeline_runs.c.status == "running",
                    t.pipeline_runs.c.host == HOST,
                    t.pipeline_runs.c.pid.is_not(None),
                )
            ).all()
        dead = [(str(r[0]), int(r[1])) for r in rows if not pid_alive(int(r[1]))]
        for run_id, pid in dead:
            with self.store.engine.begin() as conn:
                conn.execute(
                    t.pipeline_runs.update()
                    .where(t.pipeline_runs.c.id == run_id, t.pipeline_runs.c.status == "running")
                    .values(
                        status="killed",
                        ended_at=now(),
                        message=f"its process (pid {pid}) ended without finishing the run",
                    )
                )
        return len(dead)

    def finish(self, run_id: str, *, status: str, message: str | None) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                t.pipeline_runs.update()
                .where(t.pipeline_runs.c.id == run_id)
                .values(status=status, ended_at=now(), message=message)
            )

    def cached(self, key: str) -> tuple[dict[str, str], dict[str, Any]] | None:
        """The outputs and summary cached under ``key``, while all its outputs still exist."""
        with self.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.step_cache.c.outputs, t.step_cache.c.summary).where(
                    t.step_cache.c.cache_key == key
                )
            ).first()
        if row is None:
            return None
        outputs: dict[str, str] = json.loads(row[0])
        if not all(self.store.has(a) for a in outputs.values()):
            return None
        return outputs, json.loads(row[1])

    def remember(
        self, step: str, key: str, outputs: dict[str, str], summary: dict[str, Any]
    ) -> None:
        """Cache a step's result under its key (replacing an older one)."""
        values = {
            "step": step,
            "outputs": json.dumps(outputs, sort_keys=True),
            "summary": json.dumps(summary, sort_keys=True, default=str),
            "created_at": now(),
        }
        with self.store.engine.begin() as conn:
            updated = conn.execute(
                t.step_cache.update().where(t.step_cache.c.cache_key == key).values(**values)
            ).rowcount
            if not updated:
                conn.execute(t.step_cache.insert().values(cache_key=key, **values))

    def record_step(
        self,
        run_id: str,
        step: str,
        key: str,
        *,
        status: str,
        started_at: str,
        seconds: float,
        summary: dict[str, Any],
        error: str | None,
    ) -> None:
        """One step's run (ran, cached, skipped or failed) within a pipeline run."""
        with self.store.engine.begin() as conn:
            conn.execute(
                t.step_runs.insert().values(
                    pipeline_run_id=run_id,
                    step=step,
                    cache_key=key,
                    status=status,
                    started_at=started_at,
                    ended_at=now(),
                    duration_s=seconds,
                    error=error,
                    outputs=json.dumps(summary, default=str),
                )
            )
