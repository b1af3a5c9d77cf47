"""Batch prediction: a Parquet/CSV file (or folder, or glob) in, a prediction file out.

The input is read in chunks, each checked like a REST request; rows that break
the contract (wrong type, null where never null, unseen category under the
"reject" policy, a number outside its training range under the out-of-range
"reject" policy) go to ``<output stem>.rejects.parquet`` with a ``reason``
column instead of failing the job. Under the out-of-range "flag" policy such
rows are scored and the output's ``out_of_range`` column names the features
outside their range (null for a row in range); the result counts them per
feature. A missing column fails the job. Output is written to a temporary
file next to the target and renamed into place, so a failed job leaves
nothing behind.

The job is a pipeline over bounded queues: a reader thread decodes chunk k+1
(``io.py``) while chunk k is scored on one worker per core
(``score.py``) and a writer thread encodes chunk k-1 (``write.py``), so I/O overlaps
scoring and memory stays a few chunks whatever the input size.

Example:
    >>> rt = ModelRuntime.load(Path("bundle"), version=3)
    >>> predict_file(rt, "flights.parquet", "scored.parquet", id_column="flight_id")
    {'rows': 1000, 'predicted': 998, 'rejected': 2, 'output': 'scored.parquet',
     'rejects': 'scored.rejects.parquet', 'seconds': 0.41, 'engine': 'onnxruntime'}
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlcycle.errors import BadInput
from mlcycle.predlog import OUT_OF_RANGE
from mlcycle.serve.batch.io import (
    ChunkReader,
    Format,
    InputFile,
    common_columns,
    format_of,
    id_type,
    rejects_name,
    resolve_inputs,
    total_rows,
)
from mlcycle.serve.batch.output import OutputBuilder, output_schema
from mlcycle.serve.batch.remote import is_remote, publish, staged
from mlcycle.serve.batch.score import (
    PendingChunk,
    ScoredChunk,
    Scorer,
    check_engine,
    finish_chunk,
    ray_engine_name,
    submit_chunk,
)
from mlcycle.serve.batch.write import ParquetOrCsvWriter, Sink
from mlcycle.serve.model import InputError, ModelRuntime
from mlcycle.serve.predlog import LogRows, ModelInfo, PredictionLog, now

__all__ = ["predict_file"]


def predict_file(
    runtime: ModelRuntime,
    input_path: str,
    output_path: str,
    *,
    chunk_rows: int = 100_000,
    id_column: str | None = None,
    progress: Callable[[int], None] | None = None,
    prediction_log: PredictionLog | None = None,
    on_total: Callable[[int | None], None] | None = None,
    engine: str = "auto",
) -> dict[str, Any]:
    """Score a Parquet or CSV input (file, folder or glob) into a Parquet or CSV file.

    The input and the output may be local or fsspec URLs
    (``s3://bucket/flights/*.parquet``, with the backend installed); a URL
    output is written locally first and published once the job has finished
    (``remote.py``).

    Output columns: the id column (``id_column``, else the model's id column
    when the input has it), ``prediction``, then ``probability`` (positive
    class) for binary models or ``proba_<class>`` per class for multiclass,
    then ``model_version``, then (out-of-range policy ``flag``) ``out_of_range``.
    ``progress`` is called after each chunk with the
    number of input rows that chunk held; ``on_total`` once, before scoring,
    with the input's row count (from Parquet footers; ``None`` for CSV). The
    result's ``engine`` says what scored the rows (``onnxruntime``,
    ``sklearn-compiled`` or ``sklearn-pipeline``) and ``onnx_max_diff`` how
    far the export was from scikit-learn at load. ``engine`` chooses:
    ``auto`` scores through ONNX only within ``BATCH_ONNX_TOLERANCE`` (1e-6)
    of scikit-learn, ``onnx`` through any export that passed its check,
    ``sklearn`` never through ONNX; ``ray`` scores the chunks on the actors of
    a Ray cluster (``RAY_ADDRESS``, else a local one; see ``ray_engine.py``),
    each as ``auto`` would, with the same checks, rejects and output.

    Raises :class:`NotFound` for a missing input and :class:`BadInput` for an
    unreadable input, a missing column or an unwritable output.

    Example:
        >>> predict_file(rt, "data/*.parquet", "out/scored.parquet", chunk_rows=50_000)
        {'rows': 120000, 'predicted': 120000, 'rejected': 0, ...}
    """
    started = time.perf_counter()
    check_engine(runtime, engine)  # a bad choice fails before any file is touched
    if is_remote(output_path):
        return _predict_remote(
            input_path,
            output_path,
            lambda local: predict_file(
                runtime,
                input_path,
                local,
                chunk_rows=chunk_rows,
                id_column=id_column,
                progress=progress,
                prediction_log=prediction_log,
                on_total=on_total,
                engine=engine,
            ),
            started,
        )
    if chunk_rows < 1:
        raise BadInput(
            f"chunk_rows must be at least 1, got {chunk_rows}",
            "rows are read chunk by chunk",
            "pass a positive chunk size",
        )
    files, fmt = resolve_inputs(input_path)
    output = Path(output_path)
    out_fmt = format_of(output)
    if out_fmt is None:
        raise BadInput(
            f"cannot tell the output format of {output}",
            "the output format follows the file suffix",
            "name the output *.parquet or *.csv",
        )
    id_column = _id_column(runtime, input_path, common_columns(files, fmt), id_column)
    if on_total is not None:
        on_total(total_rows(files, fmt))
    job = _Job(runtime, files, fmt, output, out_fmt, id_column, chunk_rows, progress)
    job.log = prediction_log
    job.engine_choice = engine
    return job.run(started)


def _predict_remote(
    input_path: str,
    output_path: str,
    run_into: Callable[[str], dict[str, Any]],
    started: float,
) -> dict[str, Any]:
    """Run the job into a local staging file, then publish it to the ``output_path`` URL."""
    if output_path.rstrip("/") == input_path.rstrip("/"):
        raise BadInput(
            f"output {output_path} is also the input",
            "the job would overwrite what it reads",
            "write the predictions to another file",
        )
    with staged(output_path) as local:
        published = publish(run_into(str(local)), output_path)
    return {**published, "seconds": round(time.perf_counter() - started, 3)}  # upload too


def _id_column(
    runtime: ModelRuntime, input_path: str, available: set[str], id_column: str | None
) -> str | None:
    """The id column the output carries; refuse an input that lacks a feature or that id."""
    missing = [f for f in runtime.features if f not in available]
    if missing:
        raise InputError(
            [{"field": f, "error": f"column '{f}' is missing from the input"} for f in missing],
            what=f"input {input_path} lacks column(s) the model needs: {', '.join(missing)}",
            why="every row needs every feature",
            fix="add the columns, or score with the model they belong to",
        )
    if id_column is not None and id_column not in available:
        raise BadInput(
            f"id column '{id_column}' is not in input {input_path}",
            f"the input has: {', '.join(sorted(available)[:20])}",
            "pass --id-column with a column the input has, or leave it out",
        )
    if id_column is None and runtime.meta.id_column in available:
        return runtime.meta.id_column
    return id_column


@dataclass
class _Job:
    runtime: ModelRuntime
    files: list[InputFile]
    fmt: Format
    output: Path
    out_fmt: Format
    id_column: str | None
    chunk_rows: int
    progress: Callable[[int], None] | None
    rows: int = 0
    rejected: int = 0
    engine: str = ""  # what scored the rows
    engine_choice: str = "auto"  # what the caller asked for
    log: PredictionLog | None = None
    _temps: list[Path] = field(default_factory=list)
    _job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _rejects: ParquetOrCsvWriter | None = None
    # Scored values outside their training range (flag policy), by feature.
    out_of_range: dict[str, int] = field(default_factory=dict)

    @property
    def rejects_path(self) -> Path:
        return self.output.with_name(rejects_name(self.output.name))

    def run(self, started: float) -> dict[str, Any]:
        """Read → check → score → write as a pipeline, then move the files into place.

        While chunk k is scored on the worker threads, chunk k+1 is read (reader
        thread) and checked and encoded (this thread), and chunk k-1 is written
        (writer thread); at most a few chunks are in memory at once.
        """
        self._check_output()
        columns = ([self.id_column] if self.id_column else []) + [
            f for f in self.runtime.features if f != self.id_column
        ]
        out_schema = self._output_schema()
        # The builder makes the scored columns; _finish appends out_of_range (flag policy).
        scored = pa.schema([f for f in out_schema if f.name != OUT_OF_RANGE])
        builder = OutputBuilder(self.runtime, scored, self.id_column)
        out_tmp = self._temp(self.output)
        writer: ParquetOrCsvWriter | None = None
        sink = Sink()
        try:
            writer = ParquetOrCsvWriter(out_tmp, self.out_fmt, out_schema, plain=columns[:1])
            with contextlib.closing(self._scored(builder, columns)) as chunks:
                for done in chunks:
                    self.take(done, writer, sink)
            sink.finish()
            writer.close()
            if self._rejects is not None:
                self._rejects.close()
        except BaseException:
            sink.abort()
            for w in (writer, self._rejects):
                if w is not None:
                    w.abort()
            self._cleanup()
            raise
        try:
            if self._rejects is not None:
                os.replace(self._rejects.path, self.rejects_path)
            else:
                # A rejects file from an earlier run would describe other rows.
                self.rejects_path.unlink(missing_ok=True)
            os.replace(out_tmp, self.output)
        except OSError as exc:
            self._cleanup()
            raise BadInput(
                f"cannot write {self.output}", str(exc), "choose a folder you can write to"
            ) from None
        return {
            "rows": self.rows,
            "predicted": self.rows - self.rejected,
            "rejected": self.rejected,
            "output": str(self.output),
            "rejects": str(self.rejects_path) if self._rejects is not None else None,
            "seconds": round(time.perf_counter() - started, 3),
            "engine": self.engine,
            "onnx_max_diff": self.runtime.onnx_max_diff,
            "out_of_range_policy": self.runtime.out_of_range,
            "out_of_range": dict(self.out_of_range),
        }

    def _scored(self, builder: OutputBuilder, columns: list[str]) -> Generator[ScoredChunk]:
        """The scored chunks in input order: on this machine's cores, or on Ray actors."""
        if self.engine_choice == "ray":
            from mlcycle.serve.batch.ray_engine import scored_on_ray  # the optional extra

            self.engine = ray_engine_name(self.runtime)
            # Logged, the actors send each chunk's checked rows back: this process writes
            # the log, as it does for the local engine.
            yield from scored_on_ray(
                self.runtime,
                self.files,
                self.fmt,
                columns,
                self.chunk_rows,
                builder,
                with_rows=self.log is not None,
            )
            return
        pending: deque[PendingChunk] = deque()
        with (
            Scorer(self.runtime, engine=self.engine_choice) as scorer,
            ChunkReader(self.files, self.fmt, columns, self.chunk_rows) as reader,
        ):
            self.engine = scorer.engine
            for original, frame in reader:
                csv = self.fmt == "csv"
                pending.append(submit_chunk(self.runtime, scorer, original, frame, from_text=csv))
                # One chunk in flight behind the one just submitted keeps every
                # core busy without holding more than two chunks' scores.
                while len(pending) > 1:
                    yield finish_chunk(pending.popleft(), builder)
            while pending:
                yield finish_chunk(pending.popleft(), builder)

    def take(self, done: ScoredChunk, writer: ParquetOrCsvWriter, sink: Sink) -> None:
        """Queue a scored chunk's output and rejects for writing; log it; count it."""
        if self.log is not None and done.frame is not None and len(done.frame):
            self.log.submit(
                LogRows(
                    ModelInfo.of(self.runtime),
                    "batch",
                    self._job_id,
                    now(),
                    done.table.column("prediction").to_pylist(),
                    done.proba,
                    done.ids.to_pylist() if done.ids is not None else None,
                    frame=done.frame,
                )
            )
        sink.write(writer, done.table)
        if done.rejects is not None:
            if self._rejects is None:
                self._rejects = ParquetOrCsvWriter(
                    self._temp(self.rejects_path), "parquet", done.rejects.schema
                )
            sink.write(self._rejects, done.rejects)
        for name, count in done.out_of_range.items():
            self.out_of_range[name] = self.out_of_range.get(name, 0) + count
        self.rows += done.rows
        self.rejected += done.rejected
        if self.progress is not None:
            self.progress(done.rows)

    def _check_output(self) -> None:
        folder = self.output.parent
        if not folder.is_dir():
            raise BadInput(
                f"cannot write {self.output}",
                f"the folder {folder} does not exist"
                if not folder.exists()
                else f"{folder} is not a folder",
                "create the folder first or choose another output path",
            )
        if self.output.is_dir():
            raise BadInput(
                f"cannot write {self.output}",
                "it is a folder",
                "name an output file, e.g. scored.parquet",
            )
        target = self.output.resolve()
        inputs = {f.local.resolve() for f in self.files if f.local is not None}
        if target in inputs or self.rejects_path.resolve() in inputs:
            raise BadInput(
                f"output {self.output} is also an input",
                "the job would overwrite what it reads",
                "write the predictions to another file",
            )

    def _temp(self, target: Path) -> Path:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise BadInput(
                f"cannot write {target}", str(exc), "choose a folder you can write to"
            ) from None
        os.close(fd)
        path = Path(name)
        self._temps.append(path)
        return path

    def _cleanup(self) -> None:
        for path in self._temps:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    def _output_schema(self) -> pa.Schema:
        dtype = id_type(self.files, self.fmt, self.id_column) if self.id_column else None
        return output_schema(self.runtime, self.id_column, dtype)
