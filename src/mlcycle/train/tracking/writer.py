"""The tracker: runs whose params, metrics and tags are buffered and written in batches.

A ``log_metric`` call appends a tuple to a list (about a microsecond); a
background thread writes what has accumulated every ``flush_interval``
seconds, or at once when ``max_pending`` rows are waiting, each batch in one
transaction with one ``executemany`` per table. Metric points are packed into
one row per (run, key, flush) (see :mod:`.blocks`), so a flush costs about as
much for 100 points as for 100,000. Nothing is lost on a normal
exit (``atexit``), on an exception inside ``with start_run()`` (the run is
marked ``failed`` and flushed), or on SIGTERM (turned into ``SystemExit`` so
the same unwinding runs; the run is marked ``killed``).

Example:
    >>> tracker = Tracker(Store.open(Path(".")))
    >>> with tracker.start_run(name="try-1") as run:
    ...     run.log_params({"lr": 0.1})
    ...     run.log_metric("loss", 0.3, step=1)
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

# The module itself, since the SIGTERM handler rebinds its `signalled` and `exiting`;
# by full path, since `from` the package would make package and writer import each other.
import mlcycle.train.tracking.process as process
from mlcycle.errors import BadInput
from mlcycle.store import Store
from mlcycle.train.tracking.blocks import encode
from mlcycle.train.tracking.process import (
    HOST,
    git_state,
    install_sigterm,
    library_versions,
    split_git_sha,
)
from mlcycle.train.tracking.sql import RUN_COLUMNS, statements

__all__ = ["Run", "Tracker", "split_git_sha"]

# pruned: an Optuna trial stopped early by the pruner (mlcycle.train.tuning).
STATUSES = ("running", "finished", "failed", "killed", "pruned")
PID_TAG = "mlcycle.pid"


class Run:
    """One tracked run. Use it as a context manager, or call :meth:`end`."""

    def __init__(self, tracker: Tracker, row: dict[str, Any]) -> None:
        self.tracker = tracker
        self.row = row
        self.id: str = row["id"]
        self.name: str = row["name"]
        self.experiment: str = row["experiment"]
        self._params: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._stack: list[Run] | None = None

    @property
    def status(self) -> str:
        return str(self.row["status"])

    # --- logging ---------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; a key keeps its first value (changing it is an error)."""
        rows = []
        for key, value in params.items():
            text = str(value)
            old = self._params.get(key)
            if old is not None:
                if old != text:
                    raise BadInput(
                        f"run {self.id[:8]}: param '{key}' is already {old!r}",
                        f"a run's params are fixed once logged (got {text!r})",
                        "log the new value as a tag or a metric, or start a new run",
                    )
                continue
            self._params[key] = text
            rows.append((self.id, key, text))
        self.tracker._add("params", rows)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record one value of a metric; ``step`` defaults to the key's next step (0, 1, …)."""
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = step
        self.tracker._add_one(
            "metrics", (self.id, key, int(step), _number(key, value), time.time())
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record several metrics at one step."""
        now = time.time()
        steps = self._steps
        if step is None:
            rows = []
            for key, value in metrics.items():
                s = steps[key] = steps.get(key, -1) + 1
                rows.append((self.id, key, s, _number(key, value), now))
            self.tracker._add("metrics", rows)
            return
        if not metrics:
            return
        step = int(step)
        try:
            # Kept as one (keys, values) record: the flush packs it column-wise
            # into blocks (see .blocks), with no tuple per point.
            values = list(map(float, metrics.values()))
        except (TypeError, ValueError):
            for key, value in metrics.items():
                _number(key, value)
            raise
        keys = tuple(metrics)
        steps.update(dict.fromkeys(keys, step))
        self.tracker._add_batch((self.id, keys, step, now, values))

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Record labels; unlike params, a tag may be overwritten."""
        self.tracker._add("tags", [(self.id, k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, name: str | None = None) -> str:
        """Copy a file or folder into the store (content-addressed); return its artifact id."""
        return self.tracker._log_file(self, Path(path), name)

    # --- life cycle ------------------------------------------------------------------

    def end(self, status: str = "finished") -> None:
        """Mark the run ended (idempotent: the first end wins)."""
        if status not in STATUSES:
            raise BadInput(f"unknown run status '{status}'", "", f"use one of {STATUSES}")
        self.tracker._end(self, status)

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.end("finished")
        elif issubclass(kind, (KeyboardInterrupt, SystemExit)):
            self.end("killed")
        else:
            self.end("failed")
        # A failure is the moment the data matters most: write it now.
        if kind is not None:
            self.tracker.flush()

    def __repr__(self) -> str:
        return f"Run(id={self.id[:8]!r}, name={self.name!r}, status={self.status!r})"


def _number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(
            f"metric '{key}' = {value!r} is not a number",
            "metrics are numeric series",
            "log text as a tag or a param",
        ) from None
    return number


class Tracker:
    """Runs in one store, with a write buffer shared by every run of this process."""

    def __init__(
        self, store: Store, *, flush_interval: float = 1.0, max_pending: int = 50_000
    ) -> None:
        self.store = store
        self.engine = store.engine
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._lock = threading.Lock()  # guards the buffers; held for microseconds
        self._write_lock = threading.RLock()  # one writer at a time, in order
        self._runs: dict[str, dict[str, Any]] = {}
        self._buffers: dict[str, list[tuple[Any, ...]]] = _empty_buffers()
        self._pending = 0
        self._active: dict[str, Run] = {}
        self._local = threading.local()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._sql = statements(self.engine.dialect.paramstyle)
        atexit.register(self._close_at_exit)
        install_sigterm()

    # --- SQL -------------------------------------------------------------------------

    # --- runs ------------------------------------------------------------------------

    def start_run(
        self,
        name: str | None = None,
        *,
        experiment: str = "default",
        parent: Run | str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        seed: int | None = None,
        dataset_id: str | None = None,
        spec_hash: str | None = None,
        git_sha: str | None = None,
        git_dirty: bool | None = None,
        system_tags: bool = True,
    ) -> Run:
        """Start a run and make it this thread's active run.

        ``git_sha``/``git_dirty`` default to the repository holding the working
        directory (looked up once per process).
        """
        if git_sha is None:
            git_sha, git_dirty = git_state(os.getcwd())
        run_id = uuid.uuid4().hex
        row = {
            "id": run_id,
            "experiment": experiment,
            "name": name or f"run-{run_id[:8]}",
            "status": "running",
            "parent_id": parent.id if isinstance(parent, Run) else parent,
            "start_time": time.time(),
            "end_time": None,
            "duration_s": None,
            "git_sha": git_sha,
            "git_dirty": git_dirty,
            "host": HOST,
            "seed": seed,
            "dataset_id": dataset_id,
            "spec_hash": spec_hash,
        }
        run = Run(self, row)
        stack = self._stack()
        run._stack = stack
        with self._lock:
            self._runs[run_id] = row
            self._active[run_id] = run
        stack.append(run)
        if system_tags:
            run.set_tags(
                {f"mlcycle.lib.{k}": v for k, v in library_versions().items()}
                | {"mlcycle.source": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""}
                # The process running it: a run left `running` by a process that died
                # (kill -9) is marked killed later (see tracking.reap_dead_runs).
                | {PID_TAG: os.getpid()}
            )
        if params:
            run.log_params(params)
        if tags:
            run.set_tags(tags)
        self._ensure_thread()
        return run

    def active_run(self) -> Run | None:
        stack = self._stack()
        return stack[-1] if stack else None

    def _stack(self) -> list[Run]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _end(self, run: Run, status: str) -> None:
        with self._lock:
            if run.row["status"] == "running":
                end = time.time()
                run.row.update(
                    status=status, end_time=end, duration_s=end - float(run.row["start_time"])
                )
                self._runs[run.id] = run.row
            self._active.pop(run.id, None)
        if run._stack is not None and run in run._stack:
            run._stack.remove(run)

    # --- buffering -------------------------------------------------------------------

    def _add_one(self, table: str, row: tuple[Any, ...]) -> None:
        with self._lock:
            self._buffers[table].append(row)
            self._pending += 1
            full = self._pending >= self.max_pending
        if full:
            self.flush()
        if process.signalled is not None:
            process.exit_if_signalled()

    def _add(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with self._lock:
            self._buffers[table].extend(rows)
            self._pending += len(rows)
            full = self._pending >= self.max_pending
        if full:
            self.flush()
        if process.signalled is not None:
            process.exit_if_signalled()

    def _add_batch(self, batch: tuple[Any, ...]) -> None:
        with self._lock:
            self._buffers["batches"].append(batch)
            self._pending += len(batch[1])
            full = self._pending >= self.max_pending
        if full:
            self.flush()
        if process.signalled is not None:
            process.exit_if_signalled()

    def pending(self) -> int:
        """Rows waiting to be written."""
        return self._pending + len(self._runs)

    def flush(self) -> None:
        """Write everything buffered, in one transaction; on failure keep it for a retry."""
        with self._write_lock:
            with self._lock:
                runs = list(self._runs.values())
                buffers = self._buffers
                if not runs and not any(buffers.values()):
                    return
                pending = self._pending
                self._runs = {}
                self._buffers = _empty_buffers()
                self._pending = 0
            try:
                blocks, latest = encode(buffers["metrics"], buffers["batches"])
                tags = list({(r[0], r[1]): r for r in buffers["tags"]}.values())
                with self.engine.begin() as conn:
                    # Only the last value of a tag key in this batch matters.
                    for sql, rows in (
                        (self._sql["runs"], [tuple(r[c] for c in RUN_COLUMNS) for r in runs]),
                        (self._sql["params"], buffers["params"]),
                        (self._sql["blocks"], blocks),
                        (self._sql["latest"], latest),
                        (self._sql["tags"], tags),
                    ):
                        if rows:
                            conn.exec_driver_sql(sql, rows)
            except BaseException:
                with self._lock:
                    for row in runs:
                        self._runs.setdefault(row["id"], row)
                    for table, rows in buffers.items():
                        self._buffers[table][:0] = rows
                    self._pending += pending
                raise

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._flush_loop, name="mlcycle-tracking-flush", daemon=True
            )
            self._thread.start()

    def _flush_loop(self) -> None:
        while not self._wake.wait(self.flush_interval):
            if self._closed:
                return
            if self._pending or self._runs:
                try:
                    self.flush()
                except Exception as exc:  # retried at the next tick; the data stays buffered
                    print(f"mlcycle: tracking flush failed, will retry: {exc}", file=sys.stderr)

    def _close_at_exit(self) -> None:
        process.exiting = True  # a second SIGTERM must not cut the final flush short
        self.close()

    def close(self) -> None:
        """End the runs still active (``finished``) and write everything; called at exit."""
        if self._closed:
            return
        for run in list(self._active.values()):
            run.end("finished")
        self.flush()
        self._closed = True
        self._wake.set()

    # --- files -----------------------------------------------------------------------

    def _log_file(self, run: Run, path: Path, name: str | None) -> str:
        if not path.exists():
            raise BadInput(
                f"cannot log artifact {path}", "no such file or folder", "check the path"
            )
        name = name or path.name
        with self.store.staging() as folder:
            target = folder / "files" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target)
                size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            else:
                shutil.copy2(path, target)
                size = path.stat().st_size
            artifact_id = self.store.put(folder, kind="run_file", record={"name": name})
        with self.engine.begin() as conn:
            conn.exec_driver_sql(self._sql["files"], [(run.id, name, artifact_id, size)])
        return artifact_id


def _empty_buffers() -> dict[str, list[tuple[Any, ...]]]:
    # params, tags and single points are rows; batches are whole log_metrics calls.
    return {"params": [], "metrics": [], "batches": [], "tags": []}
