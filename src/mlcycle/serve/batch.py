"""Batch prediction: a Parquet/CSV file (or folder, or glob) in, a prediction file out.

The input is read in chunks, each checked like a REST request; rows that break
the contract (wrong type, null where never null, unseen category under the
"reject" policy) go to ``<output stem>.rejects.parquet`` with a ``reason``
column instead of failing the job. A missing column fails the job. Output is
written to a temporary file next to the target and renamed into place, so a
failed job leaves nothing behind.

Example:
    >>> rt = ModelRuntime.load(Path("bundle"), version=3)
    >>> predict_file(rt, "flights.parquet", "scored.parquet", id_column="flight_id")
    {'rows': 1000, 'predicted': 998, 'rejected': 2, 'output': 'scored.parquet',
     'rejects': 'scored.rejects.parquet', 'seconds': 0.41}
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mlcycle.errors import BadInput, NotFound
from mlcycle.serve.predlog import LogEntry, ModelInfo, PredictionLog, now
from mlcycle.serve.runtime import InputError, ModelRuntime

Format = Literal["parquet", "csv"]
_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst", ".csv.zip")


def predict_file(
    runtime: ModelRuntime,
    input_path: str,
    output_path: str,
    *,
    chunk_rows: int = 100_000,
    id_column: str | None = None,
    progress: Callable[[int], None] | None = None,
    prediction_log: PredictionLog | None = None,
) -> dict[str, Any]:
    """Score a Parquet or CSV input (file, folder or glob) into a Parquet or CSV file.

    Output columns: the id column (``id_column``, else the model's id column
    when the input has it), ``prediction``, then ``probability`` (positive
    class) for binary models or ``proba_<class>`` per class for multiclass,
    then ``model_version``. ``progress`` is called after each chunk with the
    number of input rows that chunk held.

    Raises :class:`NotFound` for a missing input and :class:`BadInput` for an
    unreadable input, a missing column or an unwritable output.

    Example:
        >>> predict_file(rt, "data/*.parquet", "out/scored.parquet", chunk_rows=50_000)
        {'rows': 120000, 'predicted': 120000, 'rejected': 0, ...}
    """
    started = time.perf_counter()
    if chunk_rows < 1:
        raise BadInput(
            f"chunk_rows must be at least 1, got {chunk_rows}",
            "rows are read chunk by chunk",
            "pass a positive chunk size",
        )
    files, fmt = _resolve_inputs(input_path)
    output = Path(output_path)
    out_fmt = _format_of(output)
    if out_fmt is None:
        raise BadInput(
            f"cannot tell the output format of {output}",
            "the output format follows the file suffix",
            "name the output *.parquet or *.csv",
        )
    available = _common_columns(files, fmt)
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
        id_column = runtime.meta.id_column
    job = _Job(runtime, files, fmt, output, out_fmt, id_column, chunk_rows, progress)
    job.log = prediction_log
    return job.run(started)


@dataclass
class _Job:
    runtime: ModelRuntime
    files: list[Path]
    fmt: Format
    output: Path
    out_fmt: Format
    id_column: str | None
    chunk_rows: int
    progress: Callable[[int], None] | None
    rows: int = 0
    rejected: int = 0
    log: PredictionLog | None = None
    _temps: list[Path] = field(default_factory=list)
    _job_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def rejects_path(self) -> Path:
        name = self.output.name
        stem = name[: -len(_suffix_of(name))] if _suffix_of(name) else self.output.stem
        return self.output.with_name(stem + ".rejects.parquet")

    def run(self, started: float) -> dict[str, Any]:
        self._check_output()
        columns = ([self.id_column] if self.id_column else []) + [
            f for f in self.runtime.features if f != self.id_column
        ]
        out_schema = self._output_schema()
        out_tmp = self._temp(self.output)
        writer: _Writer | None = None
        rejects: _Writer | None = None
        rej_tmp: Path | None = None
        try:
            writer = _Writer.open(out_tmp, self.out_fmt, out_schema)
            for original, frame in _chunks(self.files, self.fmt, columns, self.chunk_rows):
                check = self.runtime.check_rows(frame, from_text=self.fmt == "csv")
                kept = pa.array(~check.rejected)
                writer.write(self._scored(original.filter(kept), check.frame, out_schema))
                n_bad = int(check.rejected.sum())
                if n_bad:
                    bad = original.filter(pa.array(check.rejected))
                    bad = bad.append_column("reason", pa.array(check.reasons, pa.string()))
                    if rejects is None:
                        rej_tmp = self._temp(self.rejects_path)
                        rejects = _Writer.open(rej_tmp, "parquet", bad.schema)
                    rejects.write(bad)
                self.rows += len(frame)
                self.rejected += n_bad
                if self.progress is not None:
                    self.progress(len(frame))
            writer.close()
            if rejects is not None:
                rejects.close()
        except BaseException:
            for w in (writer, rejects):
                if w is not None:
                    w.abort()
            self._cleanup()
            raise
        try:
            if rej_tmp is not None:
                os.replace(rej_tmp, self.rejects_path)
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
            "rejects": str(self.rejects_path) if rej_tmp is not None else None,
            "seconds": round(time.perf_counter() - started, 3),
        }

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
        if any(f.resolve() == target for f in self.files) or (
            self.rejects_path.resolve() in {f.resolve() for f in self.files}
        ):
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
        fields: list[pa.Field] = []
        if self.id_column:
            fields.append(pa.field(self.id_column, _id_type(self.files, self.fmt, self.id_column)))
        rt = self.runtime
        fields.append(pa.field("prediction", _label_type(rt)))
        for name in _proba_columns(rt):
            fields.append(pa.field(name, pa.float64()))
        fields.append(pa.field("model_version", pa.int64()))
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise BadInput(
                f"id column '{self.id_column}' clashes with an output column",
                f"the output has columns {', '.join(names[1:])}",
                "rename the id column in the input",
            )
        return pa.schema(fields)

    def _scored(self, original: pa.Table, frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
        rt = self.runtime
        n = len(frame)
        arrays: list[pa.Array] = []
        if self.id_column:
            ids = original.column(self.id_column)
            arrays.append(_cast(ids, schema.field(self.id_column).type, self.id_column))
        if n:
            labels, proba = rt.predict_arrays(frame)
            if self.log is not None:
                ids = original.column(self.id_column).to_pylist() if self.id_column else None
                self.log.submit(
                    LogEntry(
                        ModelInfo.of(rt), "batch", self._job_id, now(), frame, ids, labels, proba
                    )
                )
        else:
            labels, proba = [], None
        label_type = schema.field("prediction").type
        if pa.types.is_string(label_type):
            labels = [str(label) for label in labels]
        arrays.append(pa.array(labels, label_type))
        prob_cols = _proba_columns(rt)
        if prob_cols:
            matrix = proba if proba is not None else np.empty((0, len(rt.classes or [])))
            if rt.positive_index is not None:
                arrays.append(pa.array(matrix[:, rt.positive_index], pa.float64()))
            else:
                arrays.extend(pa.array(matrix[:, j], pa.float64()) for j in range(len(prob_cols)))
        arrays.append(pa.array([rt.version] * n, pa.int64()))
        return pa.Table.from_arrays(arrays, schema=schema)


class _Writer:
    """Streams tables into one Parquet or CSV file."""

    def __init__(self, path: Path, writer: Any, schema: pa.Schema) -> None:
        self.path = path
        self.writer = writer
        self.schema = schema
        self.closed = False

    @classmethod
    def open(cls, path: Path, fmt: Format, schema: pa.Schema) -> _Writer:
        try:
            if fmt == "parquet":
                return cls(path, pq.ParquetWriter(str(path), schema), schema)
            return cls(path, pacsv.CSVWriter(str(path), schema), schema)
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


# --- inputs -------------------------------------------------------------------------


def _suffix_of(name: str) -> str:
    lower = name.lower()
    for suffix in (*_CSV, *_PARQUET):
        if lower.endswith(suffix):
            return name[-len(suffix) :]
    return ""


def _format_of(path: Path) -> Format | None:
    suffix = _suffix_of(path.name).lower()
    if suffix in _PARQUET:
        return "parquet"
    if suffix in _CSV:
        return "csv"
    return None


def _resolve_inputs(input_path: str) -> tuple[list[Path], Format]:
    path = Path(input_path)
    if path.is_dir():
        candidates = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not p.name.startswith((".", "_")) and _format_of(p)
        )
        where = f"folder {path}"
    elif path.exists():
        candidates = [path]
        where = str(path)
    elif glob.has_magic(input_path):
        candidates = sorted(
            Path(p) for p in glob.glob(input_path, recursive=True) if Path(p).is_file()
        )
        where = f"pattern {input_path}"
    else:
        raise NotFound(
            f"input {input_path} not found",
            "no such file or folder",
            "check the path (a file, a folder or a glob like data/*.parquet)",
        )
    if not candidates:
        raise NotFound(
            f"no Parquet or CSV files in {where}", "nothing matched", "check the path or pattern"
        )
    formats = {_format_of(p) for p in candidates}
    if None in formats:
        unknown = next(p for p in candidates if _format_of(p) is None)
        raise BadInput(
            f"cannot tell the format of {unknown}",
            "the input format follows the file suffix",
            "use .parquet or .csv files",
        )
    if len(formats) > 1:
        raise BadInput(
            f"{where} mixes Parquet and CSV files",
            "one job reads one format",
            "score each format separately",
        )
    fmt = formats.pop()
    assert fmt is not None
    return candidates, fmt


def _common_columns(files: list[Path], fmt: Format) -> set[str]:
    common: set[str] | None = None
    for path in files:
        try:
            if fmt == "parquet":
                names = set(pq.read_schema(path).names)
            else:
                names = {str(c) for c in pd.read_csv(path, nrows=0).columns}
        except (OSError, pa.ArrowException, ValueError, UnicodeDecodeError) as exc:
            raise _unreadable(path, fmt, exc) from None
        common = names if common is None else common & names
    return common or set()


def _unreadable(path: Path, fmt: Format, exc: BaseException) -> BadInput:
    return BadInput(
        f"cannot read {path}",
        f"{type(exc).__name__}: {exc}",
        f"check that it is a valid {fmt.upper()} file",
    )


def _chunks(
    files: list[Path], fmt: Format, columns: list[str], chunk_rows: int
) -> Iterator[tuple[pa.Table, pd.DataFrame]]:
    """Yield (original columns as Arrow, features as pandas) chunk by chunk."""
    for path in files:
        try:
            if fmt == "parquet":
                parquet = pq.ParquetFile(path)
                for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                    table = pa.Table.from_batches([batch])
                    yield table, table.to_pandas()
            else:
                # Every column as text: codes like "007" stay intact, the schema
                # decides what is a number, and every chunk has the same types.
                reader = pd.read_csv(path, chunksize=chunk_rows, dtype=str, usecols=columns)
                with reader:
                    for frame in reader:
                        frame = frame.reset_index(drop=True)
                        table = pa.Table.from_pandas(
                            frame,
                            schema=pa.schema([(c, pa.string()) for c in frame.columns]),
                            preserve_index=False,
                        )
                        yield table, frame
        except (OSError, pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise _unreadable(path, fmt, exc) from None


def _id_type(files: list[Path], fmt: Format, column: str) -> pa.DataType:
    if fmt == "csv":
        return pa.string()
    dtype = pq.read_schema(files[0]).field(column).type
    return dtype.value_type if pa.types.is_dictionary(dtype) else dtype


def _cast(values: pa.ChunkedArray, dtype: pa.DataType, name: str) -> pa.ChunkedArray:
    if values.type == dtype:
        return values
    try:
        return values.cast(dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BadInput(
            f"id column '{name}' has different types across input files",
            str(exc),
            "give every input file the same column types",
        ) from None


def _label_type(rt: ModelRuntime) -> pa.DataType:
    if not rt.is_classifier or rt.classes is None:
        return pa.float64()
    labels = rt.classes
    if all(isinstance(c, bool) for c in labels):
        return pa.bool_()
    if all(isinstance(c, int) and not isinstance(c, bool) for c in labels):
        return pa.int64()
    if all(isinstance(c, float) for c in labels):
        return pa.float64()
    return pa.string()


def _proba_columns(rt: ModelRuntime) -> list[str]:
    if not rt.is_classifier or rt.classes is None:
        return []
    if rt.positive_index is not None:
        return ["probability"]
    return [f"proba_{c}" for c in rt.classes]
