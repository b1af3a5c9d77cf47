"""The prediction log: every scored row, written in the background as date-partitioned Parquet.

Layout (see ``docs/prediction-log.md``, the contract with monitoring):
``<root>/<model>/date=YYYY-MM-DD/<uuid>.parquet``, each file written whole
(temp file + rename on local disk), never appended to. Columns: ``request_id``,
``ts`` (timestamp[us, UTC]), ``model``, ``model_version`` (int64), ``role``
(champion, challenger, shadow or batch), one column per model feature (values
as validated), ``row_id``, ``prediction`` (string label, or float64 for
regression), ``probability`` (P(positive) for binary, else null) and, for
multiclass, ``proba_<class>`` per class.

The serving path only appends to a bounded in-memory queue (microseconds);
a writer thread turns queued entries into files every ``flush_seconds`` or
``flush_rows``. A full queue drops the entry and counts it (``dropped``),
so logging can never stall predictions. :meth:`PredictionLog.close` writes
everything still queued: a graceful shutdown loses nothing.

Example:
    >>> log = PredictionLog(".mlcycle/predictions", "flights")
    >>> log.submit(LogEntry.of(runtime, "champion", request_id, features, labels, proba))
    >>> log.close()
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger("mlcycle.serve")

ROLES = ("champion", "challenger", "shadow", "batch")
ENV_URL = "MLCYCLE_PREDICTIONS_URL"
_KIND_TYPES = {"numeric": pa.float64(), "boolean": pa.bool_()}


@dataclass(frozen=True)
class ModelInfo:
    """What a log entry needs to know about the model that scored it."""

    name: str
    version: int | None
    task: str
    features: tuple[tuple[str, str], ...]  # (name, schema kind)
    classes: tuple[Any, ...] | None
    positive_index: int | None

    @classmethod
    def of(cls, runtime: Any) -> ModelInfo:
        """From a :class:`~mlcycle.serve.runtime.ModelRuntime`."""
        return cls(
            name=runtime.meta.name,
            version=runtime.version,
            task=runtime.meta.task,
            features=tuple((c.name, c.kind) for c in runtime.input_schema.columns),
            classes=None if runtime.classes is None else tuple(runtime.classes),
            positive_index=runtime.positive_index,
        )


@dataclass
class LogEntry:
    """The rows of one request (or one batch chunk) and what the model said about them.

    ``inputs`` is either a list of records or a mapping feature → column
    values (a list, array or pandas Series).
    """

    model: ModelInfo
    role: str
    request_id: str
    ts: datetime
    inputs: Any  # records (a list of dicts) or columns (a mapping or a DataFrame)
    row_ids: Sequence[Any] | None
    labels: Sequence[Any]
    proba: np.ndarray | None

    @property
    def rows(self) -> int:
        return len(self.labels)


def default_root(store_home: Path) -> str:
    """``MLCYCLE_PREDICTIONS_URL`` if set, else ``<store home>/predictions``."""
    return os.environ.get(ENV_URL) or str(store_home / "predictions")


class PredictionLog:
    """A bounded queue of :class:`LogEntry` and the thread that writes it out."""

    def __init__(
        self,
        root: str | Path,
        *,
        max_queue_rows: int = 500_000,
        flush_rows: int = 100_000,
        flush_seconds: float = 1.0,
    ) -> None:
        self.root = str(root)
        self.max_queue_rows = max_queue_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self.written = 0
        self.files = 0
        self.errors = 0
        self._queue: deque[LogEntry] = deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="mlcycle-predlog", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def submit(self, entry: LogEntry) -> bool:
        """Queue ``entry``; ``False`` (and ``dropped`` grows) when the queue is full or closed."""
        n = entry.rows
        with self._cond:
            if self._closing or self._queued + n > self.max_queue_rows:
                self.dropped += n
                return False
            self._queue.append(entry)
            self._queued += n
            if self._queued >= self.flush_rows:
                self._cond.notify()
        return True

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify()
        while time.monotonic() < deadline:
            with self._cond:
                if self._queued == 0 and not self._busy:
                    return
            time.sleep(0.01)

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued, then stop the writer. Later entries are dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    # --- the writer thread ----------------------------------------------------------

    _busy = False

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self.flush_seconds)
                if not self._queue and self._closing:
                    return
                taken = list(self._queue)
                self._queue.clear()
                self._busy = bool(taken)
            if taken:
                try:
                    self._write(taken)
                except Exception:
                    self.errors += 1
                    logger.exception("prediction log: could not write %d entries", len(taken))
                finally:
                    with self._cond:
                        self._queued -= sum(e.rows for e in taken)
                        self._busy = False
            if not self._closing:
                # Gather for a while: fewer, bigger files.
                with self._cond:
                    if self._queued < self.flush_rows and not self._closing:
                        self._cond.wait(self.flush_seconds)

    def _write(self, entries: list[LogEntry]) -> None:
        groups: dict[tuple[Any, ...], list[LogEntry]] = {}
        for e in entries:
            key = (e.model.name, e.ts.date().isoformat(), e.model.features, e.model.classes)
            groups.setdefault(key, []).append(e)
        for (model, day, _, _), group in groups.items():
            table = to_table(group)
            self._put(table, model, day)
            self.written += table.num_rows
            self.files += 1

    def _put(self, table: pa.Table, model: str, day: str) -> None:
        name = f"{uuid.uuid4().hex}.parquet"
        if "://" in self.root and not self.root.startswith("file://"):
            import fsspec

            url = f"{self.root.rstrip('/')}/{model}/date={day}/{name}"
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            fs, path = fsspec.core.url_to_fs(url)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(path, "wb") as handle:
                handle.write(buffer.getvalue())
            return
        folder = Path(self.root.removeprefix("file://")) / model / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, folder / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def to_table(entries: list[LogEntry]) -> pa.Table:
    """Entries of one model (same features and classes) as one table in the log's schema."""
    info = entries[0].model
    n = sum(e.rows for e in entries)
    rid: list[str] = []
    ts: list[datetime] = []
    versions: list[int | None] = []
    roles: list[str] = []
    for e in entries:
        rid += [e.request_id] * e.rows
        ts += [e.ts] * e.rows
        versions += [e.model.version] * e.rows
        roles += [e.role] * e.rows
    arrays: dict[str, pa.Array] = {
        "request_id": pa.array(rid, pa.string()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "model": pa.array([info.name] * n, pa.string()),
        "model_version": pa.array(versions, pa.int64()),
        "role": pa.array(roles, pa.string()),
    }
    for name, kind in info.features:
        values: list[Any] = []
        for e in entries:
            values += _column(e.inputs, name, e.rows)
        arrays[name] = _feature_array(values, kind)
    row_ids: list[Any] = []
    for e in entries:
        row_ids += (
            [None if v is None else str(v) for v in e.row_ids] if e.row_ids else [None] * e.rows
        )
    arrays["row_id"] = pa.array(row_ids, pa.string())
    labels: list[Any] = []
    for e in entries:
        labels += list(e.labels)
    if info.task == "regression":
        arrays["prediction"] = pa.array(labels, pa.float64())
    else:
        arrays["prediction"] = pa.array([str(v) for v in labels], pa.string())
    proba = (
        np.concatenate([np.asarray(e.proba, dtype=np.float64) for e in entries])
        if info.classes is not None and all(e.proba is not None for e in entries)
        else None
    )
    if info.task == "binary" and proba is not None and info.positive_index is not None:
        arrays["probability"] = pa.array(proba[:, info.positive_index], pa.float64())
    else:
        arrays["probability"] = pa.nulls(n, pa.float64())
    if info.task == "multiclass" and info.classes is not None:
        for j, label in enumerate(info.classes):
            column = proba[:, j] if proba is not None else np.full(n, np.nan)
            arrays[f"proba_{label}"] = pa.array(column, pa.float64())
    return pa.table(arrays)


def _column(inputs: Any, name: str, rows: int) -> list[Any]:
    if isinstance(inputs, Mapping) or hasattr(inputs, "columns"):  # columns or a DataFrame
        values = inputs.get(name)
        if values is None:
            return [None] * rows
        if hasattr(values, "to_numpy"):
            values = values.astype(object).where(values.notna(), None).tolist()
        return list(values)
    return [row.get(name) for row in inputs]


def _feature_array(values: list[Any], kind: str) -> pa.Array:
    if kind in _KIND_TYPES:
        target = _KIND_TYPES[kind]
        if kind == "numeric":
            values = [None if v is None or v != v else float(v) for v in values]
        else:
            values = [None if v is None or v != v else bool(v) for v in values]
        return pa.array(values, target)
    if kind == "datetime":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array([None if v is None or v != v else str(v) for v in values], pa.string())


def now() -> datetime:
    return datetime.now(UTC)
