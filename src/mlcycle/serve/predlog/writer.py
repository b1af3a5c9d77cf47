"""The prediction log writer: every scored row, written in the background as Parquet files.

Where and how the log is laid out is :mod:`mlcycle.predlog` (the contract
with monitoring, see ``docs/prediction-log.md``); this module writes it. Each
file is written whole (temp file + rename on local disk), never appended to.
Columns: ``request_id``, ``ts`` (timestamp[us, UTC]), ``model``,
``model_version`` (int64), ``role`` (one of :data:`mlcycle.predlog.ROLES`), one
column per model feature (values as validated), ``row_id`` (the input's id
column, else ``<request_id>:<index>`` for REST requests), ``prediction``
(string label, or float64 for regression), ``probability`` (P(positive) for
binary, else null) and, for multiclass, ``proba_<class>`` per class.

Everything is submitted as :class:`~mlcycle.serve.predlog.rows.LogRows`. Rows
that carry their request body and encoded matrix (the compiled path) are
appended to column buffers at once (``buffer.py``, about a microsecond, no
objects kept); any other rows are queued as they are (records or validated
frame, labels, probabilities). A writer thread turns both into Arrow columns
in bulk (``table.py``, ``matrix.py``) and into files every ``flush_seconds``
or ``flush_rows``. A full queue drops the rows and counts them (``dropped``),
so logging can never stall predictions. :meth:`PredictionLog.close` writes
everything still queued: a graceful shutdown loses nothing.

The counts (``written``, ``dropped``, ``queued``) are this process's; a server
of several workers attaches its shared metrics (:meth:`PredictionLog.attach`,
a :class:`Tally`), which receive every count as it happens, so ``/metrics``
shows the server's totals whichever worker answers.

Example:
    >>> log = PredictionLog(predictions_root(store.home))
    >>> log.submit(LogRows(ModelInfo.of(runtime), "champion", rid, now(), labels, proba,
    ...                    records=records, ids_from_request=True))
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
from collections import deque
from datetime import date, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.predlog import day_folder, new_file_name
from mlcycle.serve.predlog.buffer import ColumnBuffer
from mlcycle.serve.predlog.rows import LogRows, ModelInfo
from mlcycle.serve.predlog.table import to_table

__all__ = ["PredictionLog", "now"]

logger = logging.getLogger("mlcycle.serve")

# Rows converted per slice in the writer thread (about 1 ms of GIL each).
CONVERT_ROWS = 1024
_EPOCH = date(1970, 1, 1)


class Tally(Protocol):
    """Where the log reports its counts (the REST service's metrics): ``log_rows`` and
    ``log_dropped`` are added to, ``log_queued`` is set."""

    def add(self, name: str, amount: float) -> None:
        """Add ``amount`` to the counter ``name``."""
        ...

    def set(self, name: str, value: float) -> None:
        """Set the gauge ``name``."""
        ...


class PredictionLog:
    """A bounded queue of :class:`LogRows`, column buffers, and the thread that writes them out.

    :meth:`submit` appends rows that carry a request body and its encoded
    matrix (the compiled path) to column buffers; it queues everything else
    (the generic path, shadow scoring, batch chunks) as it is.
    The writer takes both every ``convert_seconds`` and turns them into
    Arrow tables (so queued Python objects die young instead of piling up in
    the collector's old generation for a whole flush), and writes the
    converted rows as one file per model and day every ``flush_seconds`` or
    ``flush_rows``. Converting 0.25 s of traffic at a time keeps the per-call
    overhead of Arrow small.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        max_queue_rows: int = 500_000,
        flush_rows: int = 100_000,
        flush_seconds: float = 1.0,
        convert_seconds: float = 0.25,
    ) -> None:
        self.root = str(root)
        self.max_queue_rows = max_queue_rows
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.convert_seconds = min(convert_seconds, flush_seconds)
        self.dropped = 0
        self.written = 0
        self.files = 0
        self.errors = 0
        self.tally: Tally | None = None
        self._queue: deque[LogRows] = deque()
        # The compiled path's rows, as columns: (id of ModelInfo, role, id of decoder) → buffer.
        self._buffers: dict[tuple[int, str, int], ColumnBuffer] = {}
        self._queued = 0  # rows accepted and not yet written (queued or converted)
        # A plain lock for submit (the request path; a Condition's costs twice as
        # much) and an event that wakes the writer early for flush and close.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._flush_now = False
        # Converted, not yet written: (model name, task, features, classes, positive
        # index, day) → (model, tables, rows).
        self._pending: dict[tuple[Any, ...], tuple[ModelInfo, list[pa.Table], int]] = {}
        self._pending_rows = 0
        self._last_write = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="mlcycle-predlog", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._queued

    def attach(self, tally: Tally) -> None:
        """Report every count from now on to ``tally`` too (and what was counted so far).

        Example:
            >>> log.attach(metrics)   # the REST app does this with its Metrics
        """
        with self._lock:
            self.tally = tally
            written, dropped = self.written, self.dropped
        tally.add("log_rows", written)
        tally.add("log_dropped", dropped)

    def _tally(self, name: str, amount: float, *, gauge: bool = False) -> None:
        tally = self.tally
        if tally is not None:
            try:
                if gauge:
                    tally.set(name, amount)
                else:
                    tally.add(name, amount)
            except Exception:  # metrics must never stop the log
                logger.exception("prediction log: could not count %s", name)

    def submit(self, rows: LogRows) -> bool:
        """Take ``rows``; ``False`` (and ``dropped`` grows) when the queue is full or closed.

        Rows with a ``body``, ``matrix`` and ``decoder`` (the compiled path)
        are appended to column buffers now, while their values are in cache,
        and ``rows`` is not kept (see ``buffer.py``); other rows are queued.

        Example:
            >>> log.submit(LogRows(info, "batch", job_id, now(), labels, proba, frame=chunk))
            True
        """
        n = len(rows.labels)
        body, decoder = rows.body, rows.decoder
        with self._lock:
            if self._closing or self._queued + n > self.max_queue_rows:
                self.dropped += n
                self._tally("log_dropped", n)  # the metrics' own lock: never held with ours
                return False
            if body is None or decoder is None or rows.matrix is None:
                self._queue.append(rows)
            else:
                key = (id(rows.model), rows.role, id(decoder))
                buffer = self._buffers.get(key)
                if buffer is None:
                    buffer = self._buffers[key] = ColumnBuffer(rows.model, rows.role, decoder)
                buffer.add(rows, body)
            self._queued += n
        return True

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything queued so far is written."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flush_now = True
        self._wake.set()
        while time.monotonic() < deadline:
            with self._lock:
                if self._queued == 0:
                    return
            time.sleep(0.01)

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued, then stop the writer. Later entries are dropped."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    # --- the writer thread ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            # Wait even with entries queued: converting a quarter second of traffic
            # at once is what keeps Arrow's per-call overhead small.
            if not (self._closing or self._flush_now):
                self._wake.wait(self.convert_seconds)
            self._wake.clear()
            with self._lock:
                taken = list(self._queue)
                self._queue.clear()
                buffers, self._buffers = list(self._buffers.values()), {}
                closing, flush_now = self._closing, self._flush_now
                self._flush_now = False
            if taken:
                self._convert(taken)
            for buffer in buffers:
                self._convert_buffer(buffer)
            due = (
                closing
                or flush_now
                or self._pending_rows >= self.flush_rows
                or time.monotonic() - self._last_write >= self.flush_seconds
            )
            if due:
                self._write_pending()
                self._tally("log_queued", self._queued, gauge=True)
            if closing:
                with self._lock:
                    if not self._queue and not self._buffers:  # nothing new once closing
                        return

    def _convert(self, entries: list[LogRows]) -> None:
        """Queued entries → Arrow tables in ``_pending``, grouped by model and day."""
        for (_, day), group in _groups(entries).items():
            try:
                table = self._to_table(group)
            except Exception:
                self.errors += 1
                logger.exception("prediction log: could not convert %d entries", len(group))
                with self._lock:
                    self._queued -= sum(e.rows for e in group)
                continue
            self._add_pending(group[0].model, day, table)

    def _convert_buffer(self, buffer: ColumnBuffer) -> None:
        """A compiled-path buffer → Arrow tables in ``_pending``, split by day if it must be."""
        try:
            table = buffer.to_table()
        except Exception:
            self.errors += 1
            logger.exception("prediction log: could not convert %d rows", buffer.rows)
            with self._lock:
                self._queued -= buffer.rows
            return
        seconds = np.frombuffer(buffer.seconds, dtype=np.float64)
        days = np.repeat((seconds // 86_400).astype(np.int64), np.frombuffer(buffer.counts, "q"))
        if days[0] == days[-1] and (days == days[0]).all():
            self._add_pending(buffer.info, _date(int(days[0])), table)
            return
        for day in np.unique(days).tolist():
            self._add_pending(buffer.info, _date(day), table.filter(pa.array(days == day)))

    def _add_pending(self, info: ModelInfo, day: date, table: pa.Table) -> None:
        # One file per model and day, whichever ModelInfo objects (versions) fed it.
        key = (info.name, info.task, info.features, info.classes, info.positive_index, day)
        model, tables, rows = self._pending.get(key, (info, [], 0))
        tables.append(table)
        self._pending[key] = (model, tables, rows + table.num_rows)
        self._pending_rows += table.num_rows

    def _to_table(self, group: list[LogRows]) -> pa.Table:
        """``to_table`` in slices of ~``CONVERT_ROWS`` rows, giving the GIL back between them.

        Each slice holds the GIL for about a millisecond; ``time.sleep(0)``
        releases it so the event loop answers waiting requests at once rather
        than after the interpreter's 5 ms switch interval.
        """
        rows = np.cumsum(np.fromiter(map(len, map(attrgetter("labels"), group)), dtype=np.int64))
        marks = np.arange(CONVERT_ROWS, int(rows[-1]) + CONVERT_ROWS, CONVERT_ROWS)
        ends = np.unique(np.minimum(np.searchsorted(rows, marks) + 1, len(group))).tolist()
        parts: list[pa.Table] = []
        start = 0
        for end in ends:
            parts.append(to_table(group[start:end]))
            start = end
            time.sleep(0)
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def _write_pending(self) -> None:
        self._last_write = time.monotonic()
        pending, self._pending, self._pending_rows = self._pending, {}, 0
        for key, (model, tables, rows) in pending.items():
            day = key[-1]
            try:
                table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
                self._put(table, model.name, day.isoformat())
                self.written += rows
                self.files += 1
                self._tally("log_rows", rows)
            except Exception:
                self.errors += 1
                logger.exception("prediction log: could not write %d rows", rows)
            finally:
                with self._lock:
                    self._queued -= rows

    def _put(self, table: pa.Table, model: str, day: str) -> None:
        name = new_file_name()
        if "://" in self.root and not self.root.startswith("file://"):
            from mlcycle.store.remote import filesystem  # no s3fs: "install mlcycle[s3]"

            url = f"{day_folder(self.root, model, day)}/{name}"
            buffer = io.BytesIO()
            pq.write_table(table, buffer, use_dictionary=_dictionary_columns(table))
            # An object appears whole when its upload completes (no rename needed).
            fs, path = filesystem(url)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(path, "wb") as handle:
                handle.write(buffer.getvalue())
            return
        folder = Path(day_folder(self.root.removeprefix("file://"), model, day))
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            pq.write_table(table, tmp, use_dictionary=_dictionary_columns(table))
            os.replace(tmp, folder / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Text columns worth dictionary-encoding: not the unique ids (request and row ids), where
    Parquet builds a dictionary only to give up on it (40% of the write time)."""
    return [
        f.name
        for f in table.schema
        if f.name not in ("request_id", "row_id") and pa.types.is_string(f.type)
    ]


def _groups(entries: list[LogRows]) -> dict[tuple[int, date], list[LogRows]]:
    """Entries by (model object, UTC day). A drain is usually one of each: checked with C
    loops (map, set, numpy) and model identity, not by hashing feature tuples per entry."""
    models = set(map(id, map(attrgetter("model"), entries)))
    seconds = np.fromiter(map(attrgetter("ts"), entries), dtype=np.float64, count=len(entries))
    days = (seconds // 86_400).astype(np.int64)
    if len(models) == 1 and days[0] == days[-1] and (days == days[0]).all():
        return {(models.pop(), _date(int(days[0]))): entries}
    groups: dict[tuple[int, date], list[LogRows]] = {}
    for e, day in zip(entries, days.tolist(), strict=True):
        groups.setdefault((id(e.model), _date(day)), []).append(e)
    return groups


def _date(epoch_day: int) -> date:
    return _EPOCH + timedelta(days=epoch_day)


def now() -> float:
    """The time a log entry carries: seconds since the epoch (UTC by definition).

    Example:
        >>> LogRows(info, "champion", rid, now(), labels, proba, records=records)
    """
    return time.time()
