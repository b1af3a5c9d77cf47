"""Batch prediction output: stream tables into a Parquet or CSV file on a writer thread.

:class:`Sink` writes up to ``ahead`` tables behind the caller, so Parquet
encoding (which releases the GIL) overlaps with scoring; its queue is
bounded, so memory stays a few chunks whatever the input size. An error on
the writing thread is re-raised on the caller's.

Example:
    >>> writer = ParquetOrCsvWriter(Path("out.parquet"), "parquet", schema)
    >>> sink = Sink()
    >>> sink.write(writer, table)
    >>> sink.finish(); writer.close()
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlcycle.errors import BadInput
from mlcycle.serve.batch.io import Format

_DONE = object()


class ParquetOrCsvWriter:
    """Streams tables into one Parquet or CSV file with a fixed schema."""

    def __init__(
        self, path: Path, fmt: Format, schema: pa.Schema, plain: Collection[str] = ()
    ) -> None:
        self.path = path
        self.schema = schema
        self.closed = False
        try:
            if fmt == "parquet":
                # Ids (``plain``) and probabilities are nearly all distinct: trying a
                # dictionary for them only costs time before Parquet falls back to
                # plain pages.
                dictionary = [
                    f.name
                    for f in schema
                    if f.name not in plain and not pa.types.is_floating(f.type)
                ]
                self.writer: Any = pq.ParquetWriter(str(path), schema, use_dictionary=dictionary)
            else:
                self.writer = pacsv.CSVWriter(str(path), schema)
        except OSError as exc:
            raise BadInput(
                f"cannot write {path}", str(exc), "choose a folder you can write to"
            ) from None

    def write(self, table: pa.Table) -> None:
        if table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise BadInput(
                    "input files disagree on column types",
                    str(exc),
                    "give every input file the same column types",
                ) from None
        self.writer.write_table(table)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class Sink:
    """Writes (writer, table) pairs on a background thread, in order, ``ahead`` at most queued.

    :meth:`write` and :meth:`finish` re-raise a failure of the writing thread.
    """

    def __init__(self, ahead: int = 2) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlcycle-batch-write", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None or self._stop.is_set():
                continue  # drain: the job is failing or stopping
            writer, table = item
            try:
                writer.write(table)
            except BaseException as exc:
                self._error = exc

    def write(self, writer: ParquetOrCsvWriter, table: pa.Table) -> None:
        self._raise()
        self._queue.put((writer, table))

    def finish(self) -> None:
        """Wait until everything queued is written; raise the writing thread's error if any."""
        self._queue.put(_DONE)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Drop what is queued and stop the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._queue.put(_DONE)
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
