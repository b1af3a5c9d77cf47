"""Batch scoring on a Ray cluster (``predict --engine ray``): Ray Data reads, actors score.

The local job (``job.py``) stays in charge of everything around the scoring:
the input files it resolved, the output schema, the temporary files, the
rejects file and the publish step (rename, or upload for a URL). This module
only replaces *where* chunks are scored: Ray Data reads the same files
(local paths, or the fsspec filesystem of a URL) in blocks, and
``map_batches`` hands chunks of ``chunk_rows`` rows to a pool of
:class:`RayChunkScorer` actors, one per cluster CPU but one (left for reading). Each actor loads the
bundle once and runs the local engine's own
:func:`~mlcycle.serve.batch.score.submit_chunk` and
:func:`~mlcycle.serve.batch.score.finish_chunk` (contract checks, rejects,
out-of-range flags, scoring): the rows come back exactly as the local engine
makes them, in input order (``preserve_order``), and the driver streams them
into the one output file.

A chunk yields two tables of different shapes (the scored rows, and the
rejected rows with the input's columns and a reason), while a Ray Data batch
has one schema: so each chunk maps to one record that carries both as Arrow
IPC streams (a copy of the buffers, no per-row work); a logged job's record
also carries the checked rows and probabilities, for the driver's log.

The bundle travels through Ray's object store (its files, a few MB), so
actors on other nodes need no access to the model store. An actor that dies
(a killed worker, a lost node) is restarted and its chunk retried by Ray Data
(``max_restarts``/``max_task_retries``): a chunk's result reaches the driver
once, so every row is written once.

Example:
    >>> predict_file(runtime, "s3://bucket/flights/", "scored.parquet", engine="ray")
    {'rows': 1000000, ..., 'engine': 'ray/onnxruntime'}
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from mlcycle.errors import BadInput, MlcycleError
from mlcycle.ray_cluster import cluster_cpus, connected
from mlcycle.serve.batch.io import Format, InputFile
from mlcycle.serve.batch.output import OutputBuilder
from mlcycle.serve.batch.score import ScoredChunk, Scorer, finish_chunk, submit_chunk
from mlcycle.serve.model import ModelRuntime

__all__ = ["RayChunkScorer", "scored_on_ray"]

# pandas.read_csv's default missing-value markers (the local engine reads CSV with
# pandas), so a field is null on Ray exactly when it is null locally.
PANDAS_NA = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]


class RayChunkScorer:
    """A Ray Data actor: loads the bundle once, then scores chunk after chunk.

    Constructed by Ray Data with the bundle's files (an object reference to
    ``{relative path: bytes}``), the model version, the out-of-range policy in
    force, the input format and the output schema. Subclass it to add
    instrumentation (the tests make one die mid-job).
    """

    def __init__(
        self,
        bundle: Any,
        version: int | None,
        out_of_range: str,
        fmt: Format,
        schema: pa.Schema,
        id_column: str | None,
        with_rows: bool = False,
    ) -> None:
        import ray

        files: dict[str, bytes] = ray.get(bundle) if isinstance(bundle, ray.ObjectRef) else bundle
        self._folder = Path(tempfile.mkdtemp(prefix="mlcycle-ray-bundle-"))
        for name, data in files.items():
            path = self._folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        # The driver verified the bundle against its content id before shipping it.
        self.runtime = ModelRuntime.load(
            self._folder, version, verify=False, out_of_range=out_of_range
        )
        # One core per actor: Ray runs one actor per CPU.
        self.scorer = Scorer(self.runtime, workers=1, engine="auto")
        self.builder = OutputBuilder(self.runtime, schema, id_column)
        self.from_text = fmt == "csv"
        # For the prediction log: each chunk's checked rows and probabilities travel back.
        self.with_rows = with_rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        """One chunk in, one record out: output and rejects as Arrow IPC, and the counts.

        mlcycle's own errors come back in the record (``error``), so the caller
        raises them as they are rather than as Ray's wrapper of a remote traceback.
        """
        try:
            done = self.score(batch)
        except MlcycleError as exc:
            error = json.dumps({**exc.to_dict(), "exit_code": exc.exit_code})
            return _record(None, None, 0, 0, "{}", error)
        rejects = _ipc(done.rejects) if done.rejects is not None else None
        counts = json.dumps(done.out_of_range)
        checked = None
        if self.with_rows and done.frame is not None:
            checked = _ipc(_checked_rows(done.frame, done.proba))
        return _record(_ipc(done.table), rejects, done.rows, done.rejected, counts, None, checked)

    def score(self, batch: pa.Table) -> ScoredChunk:
        """The local engine's checks and scoring of one chunk."""
        original = batch.combine_chunks()
        return finish_chunk(
            submit_chunk(
                self.runtime,
                self.scorer,
                original,
                original.to_pandas(),
                from_text=self.from_text,
            ),
            self.builder,
        )

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.scorer.close()
            shutil.rmtree(self._folder, ignore_errors=True)


def scored_on_ray(
    runtime: ModelRuntime,
    files: list[InputFile],
    fmt: Format,
    columns: list[str],
    chunk_rows: int,
    builder: OutputBuilder,
    *,
    actors: int | None = None,
    scorer_class: type[RayChunkScorer] | None = None,
    with_rows: bool = False,
) -> Iterator[ScoredChunk]:
    """The scored chunks of ``files``, in input order, scored by Ray actors.

    Joins the cluster at ``RAY_ADDRESS`` (else starts a local one for the
    job); ``actors`` defaults to the cluster's CPUs less one, which the
    read tasks need (with every CPU held by an actor, none could run).
    ``with_rows`` brings each chunk's checked rows, probabilities and ids
    back too (what the prediction log writes), as the local engine has them.

    Example:
        >>> for done in scored_on_ray(rt, files, "parquet", cols, 100_000, builder):
        ...     writer.write(done.table)
    """
    assert runtime.bundle_dir is not None
    with connected() as ray:
        import ray.data  # after connected(): without Ray, its error says what to install

        context = ray.data.DataContext.get_current()
        saved = (context.execution_options.preserve_order, context.enable_progress_bars)
        # The output keeps the input's row order, as the local engine's does.
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        try:
            dataset = _read(ray, files, fmt, columns)
            # Reading (listing files, decoding blocks) needs a CPU of its own: with
            # every CPU held by an actor it could never be scheduled.
            pool = actors or max(1, cluster_cpus(ray) - 1)
            mapped = dataset.map_batches(
                scorer_class or RayChunkScorer,  # looked up now: tests swap in a subclass
                fn_constructor_kwargs={
                    "bundle": ray.put(_bundle_files(runtime.bundle_dir)),
                    "version": runtime.version,
                    "out_of_range": runtime.out_of_range,
                    "fmt": fmt,
                    "schema": builder.schema,
                    "id_column": builder.id_column,
                    "with_rows": with_rows,
                },
                batch_size=chunk_rows,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=pool),
                num_cpus=1,
            )
            try:
                for block in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):
                    for record in block.to_pylist():
                        yield _decode(record, builder.id_column)
            except ray.exceptions.RayError as exc:
                raise _job_failed(exc) from None
        finally:
            context.execution_options.preserve_order, context.enable_progress_bars = saved


def _job_failed(exc: BaseException) -> MlcycleError:
    """What a Ray failure (not one of mlcycle's errors, which come back in the record) says."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return MlcycleError(
        "the Ray batch job failed",
        f"{type(exc).__name__}: {first}",
        "see the Ray logs (/tmp/ray/session_latest/logs on the head node); nothing was written",
    )


def _read(ray: Any, files: list[InputFile], fmt: Format, columns: list[str]) -> Any:
    """A Ray dataset over exactly the files the local engine resolved (no re-listing)."""
    fs = files[0].fs if files else None
    filesystem: Any = None
    if fs is not None:
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        filesystem = PyFileSystem(FSSpecHandler(fs))
    # Workers may run in another folder: local paths go absolute.
    paths = [f.path if f.fs is not None else str(Path(f.path).resolve()) for f in files]
    # Read tasks book a fraction of the CPU the actors leave free, so several run at once.
    common: dict[str, Any] = {
        "filesystem": filesystem,
        "file_extensions": None,
        "partitioning": None,
        "num_cpus": 0.25,
    }
    if fmt == "parquet":
        # Ray Data pushes the column selection down into the Parquet reader.
        return ray.data.read_parquet(paths, **common).select_columns(columns)
    # Every column as text and pandas' missing markers, as the local engine reads CSV.
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        include_columns=columns,
        null_values=PANDAS_NA,
        strings_can_be_null=True,
    )
    return ray.data.read_csv(paths, convert_options=convert, **common)


def _bundle_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def _table(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _record(
    output: bytes | None,
    rejects: bytes | None,
    rows: int,
    rejected: int,
    out_of_range: str,
    error: str | None,
    checked: bytes | None = None,
) -> pa.Table:
    return pa.table(
        {
            "output": pa.array([output], pa.large_binary()),
            "rejects": pa.array([rejects], pa.large_binary()),
            "rows": pa.array([rows], pa.int64()),
            "rejected": pa.array([rejected], pa.int64()),
            "out_of_range": pa.array([out_of_range], pa.string()),
            "error": pa.array([error], pa.string()),
            "checked": pa.array([checked], pa.large_binary()),
        }
    )


# The probability columns ride beside the checked feature rows under names no feature has.
_PROBA_PREFIX = "__mlcycle_proba_"


def _checked_rows(frame: pd.DataFrame, proba: np.ndarray | None) -> pa.Table:
    """A chunk's checked rows, plus its probability matrix as columns, as one Arrow table."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for j in range(proba.shape[1] if proba is not None else 0):
        assert proba is not None
        table = table.append_column(f"{_PROBA_PREFIX}{j}", pa.array(proba[:, j], pa.float64()))
    return table


def _decode(record: dict[str, Any], id_column: str | None) -> ScoredChunk:
    if record["error"] is not None:
        error = json.loads(record["error"])
        kind = BadInput if error["exit_code"] == BadInput.exit_code else MlcycleError
        raise kind(error["error"], error["why"], error["fix"])
    rejects = record["rejects"]
    table = _table(record["output"])
    done = ScoredChunk(
        table=table,
        rejects=_table(rejects) if rejects is not None else None,
        rows=int(record["rows"]),
        rejected=int(record["rejected"]),
        out_of_range=json.loads(record["out_of_range"]),
    )
    if record.get("checked") is not None:
        checked = _table(record["checked"])
        names = [n for n in checked.column_names if n.startswith(_PROBA_PREFIX)]
        done.frame = checked.drop_columns(names).to_pandas()
        if names:
            done.proba = np.column_stack([checked.column(n).to_numpy() for n in names])
        done.ids = table.column(id_column) if id_column else None
    return done
