"""Batch prediction input: find the input files, read them chunk by chunk on a thread.

Reading runs on its own thread, so Parquet decoding (which releases the GIL)
overlaps with scoring: :class:`ChunkReader` prefetches up to ``ahead``
chunks over a bounded queue, so memory stays a few chunks whatever the
input size. An error on the reading thread is re-raised on the caller's.
Writing is ``write.py``; outputs on fsspec URLs, ``remote.py``.

Example:
    >>> files, fmt = resolve_inputs("data/*.parquet")
    >>> with ChunkReader(files, fmt, ["carrier", "distance"], 100_000) as reader:
    ...     for original, frame in reader:
    ...         ...
"""

from __future__ import annotations

import contextlib
import glob
import posixpath
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.errors import BadInput, NotFound

Format = Literal["parquet", "csv"]
_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst", ".csv.zip")
_DONE = object()
# How long a blocked queue operation waits before checking whether the job stopped.
_POLL_SECONDS = 0.1


def suffix_of(name: str) -> str:
    """The format suffix of a file name (``.csv.gz`` counts as one), or ``""``.

    Example:
        >>> suffix_of("flights.csv.gz")
        '.csv.gz'
    """
    lower = name.lower()
    for suffix in (*_CSV, *_PARQUET):
        if lower.endswith(suffix):
            return name[-len(suffix) :]
    return ""


def rejects_name(name: str) -> str:
    """``scored.parquet`` → ``scored.rejects.parquet`` (also for ``.csv.gz`` and the like).

    Example:
        >>> rejects_name("scored.csv.gz")
        'scored.rejects.parquet'
    """
    suffix = suffix_of(name)
    stem = name[: -len(suffix)] if suffix else Path(name).stem
    return stem + ".rejects.parquet"


def format_of(path: Path) -> Format | None:
    """``parquet`` or ``csv`` from the file suffix; ``None`` when it says neither.

    Example:
        >>> format_of(Path("a.parquet")), format_of(Path("a.txt"))
        ('parquet', None)
    """
    suffix = suffix_of(path.name).lower()
    if suffix in _PARQUET:
        return "parquet"
    if suffix in _CSV:
        return "csv"
    return None


@dataclass(frozen=True)
class InputFile:
    """One input file: a local path, or a path on an fsspec filesystem (``s3://…``)."""

    path: str
    fs: Any = None  # the fsspec filesystem of a remote input; None for a local file

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def local(self) -> Path | None:
        return Path(self.path) if self.fs is None else None

    def __str__(self) -> str:
        return self.path if self.fs is None else str(self.fs.unstrip_protocol(self.path))

    def open(self) -> Any:
        """A binary file object (close it after use)."""
        return open(self.path, "rb") if self.fs is None else self.fs.open(self.path, "rb")


def resolve_inputs(input_path: str) -> tuple[list[InputFile], Format]:
    """The files behind a file, folder or glob (local, or an fsspec URL), and their one format.

    Raises :class:`NotFound` when nothing matches and :class:`BadInput` for
    files of unknown or mixed formats.

    Example:
        >>> files, fmt = resolve_inputs("s3://bucket/flights/*.parquet")
    """
    if "://" in input_path:
        candidates, where = _remote_inputs(input_path)
    else:
        candidates, where = _local_inputs(input_path)
    if not candidates:
        raise NotFound(
            f"no Parquet or CSV files in {where}", "nothing matched", "check the path or pattern"
        )
    formats = {format_of(Path(p.name)) for p in candidates}
    if None in formats:
        unknown = next(p for p in candidates if format_of(Path(p.name)) is None)
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


def _not_found(input_path: str) -> NotFound:
    return NotFound(
        f"input {input_path} not found",
        "no such file or folder",
        "check the path (a file, a folder or a glob like data/*.parquet)",
    )


def _listed(name: str) -> bool:
    """Files a folder input includes: data files, not hidden or ``_SUCCESS``-style markers."""
    return not name.startswith((".", "_")) and format_of(Path(name)) is not None


def _local_inputs(input_path: str) -> tuple[list[InputFile], str]:
    path = Path(input_path)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _listed(p.name))
        where = f"folder {path}"
    elif path.exists():
        found, where = [path], str(path)
    elif glob.has_magic(input_path):
        found = sorted(Path(p) for p in glob.glob(input_path, recursive=True) if Path(p).is_file())
        where = f"pattern {input_path}"
    else:
        raise _not_found(input_path)
    return [InputFile(str(p)) for p in found], where


def _remote_inputs(url: str) -> tuple[list[InputFile], str]:
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
        if glob.has_magic(path):
            found = sorted(p for p in fs.glob(path) if fs.isfile(p))
            where = f"pattern {url}"
        elif fs.isdir(path):
            found = sorted(p for p in fs.find(path) if _listed(posixpath.basename(p)))
            where = f"folder {url}"
        elif fs.exists(path):
            found, where = [path], url
        else:
            raise _not_found(url)
    except (ImportError, ValueError, OSError) as exc:
        raise BadInput(
            f"cannot list {url}",
            f"{type(exc).__name__}: {exc}",
            "check the URL and that the fsspec backend for it (e.g. s3fs) is installed",
        ) from None
    return [InputFile(p, fs) for p in found], where


def common_columns(files: list[InputFile], fmt: Format) -> set[str]:
    """The column names every input file has.

    Example:
        >>> "distance" in common_columns(files, "parquet")
        True
    """
    common: set[str] | None = None
    for file in files:
        try:
            if fmt == "parquet":
                with file.open() as handle:
                    names = set(pq.read_schema(handle).names)
            else:
                names = {str(c) for c in pd.read_csv(str(file), nrows=0).columns}
        except (OSError, pa.ArrowException, ValueError, UnicodeDecodeError) as exc:
            raise unreadable(file, fmt, exc) from None
        common = names if common is None else common & names
    return common or set()


def total_rows(files: list[InputFile], fmt: Format) -> int | None:
    """Rows in all inputs from the Parquet footers (no data read); ``None`` for CSV.

    Example:
        >>> total_rows(files, "parquet")
        120000
    """
    if fmt != "parquet":
        return None
    total = 0
    for file in files:
        try:
            with file.open() as handle:
                total += pq.ParquetFile(handle).metadata.num_rows
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise unreadable(file, fmt, exc) from None
    return total


def unreadable(file: InputFile, fmt: Format, exc: BaseException) -> BadInput:
    """The error for an input file that cannot be read, naming it and the cause.

    Example:
        >>> raise unreadable(file, "parquet", exc)
    """
    return BadInput(
        f"cannot read {file}",
        f"{type(exc).__name__}: {exc}",
        f"check that it is a valid {fmt.upper()} file",
    )


def id_type(files: list[InputFile], fmt: Format, column: str) -> pa.DataType:
    """The Arrow type of the id column in the output (text for CSV input).

    Example:
        >>> id_type(files, "parquet", "flight_id")
        DataType(string)
    """
    if fmt == "csv":
        return pa.string()
    with files[0].open() as handle:
        dtype = pq.read_schema(handle).field(column).type
    return dtype.value_type if pa.types.is_dictionary(dtype) else dtype


def read_chunks(
    files: list[InputFile], fmt: Format, columns: list[str], chunk_rows: int
) -> Iterator[tuple[pa.Table, pd.DataFrame]]:
    """Yield (original columns as Arrow, the same as pandas) chunk by chunk, in input order.

    Example:
        >>> for original, frame in read_chunks(files, "parquet", ["distance"], 100_000): ...
    """
    for file in files:
        try:
            if fmt == "parquet":
                # A local file is memory-mapped by path; a remote one read through fsspec.
                with contextlib.ExitStack() as stack:
                    local = file.local
                    source: Any = local if local is not None else stack.enter_context(file.open())
                    parquet = pq.ParquetFile(source)
                    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                        table = pa.Table.from_batches([batch])
                        yield table, table.to_pandas()
            else:
                # Every column as text: codes like "007" stay intact, the schema
                # decides what is a number, and every chunk has the same types.
                # By path or URL (not a handle), so pandas infers the compression.
                reader = pd.read_csv(str(file), chunksize=chunk_rows, dtype=str, usecols=columns)
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
            raise unreadable(file, fmt, exc) from None


class ChunkReader:
    """:func:`read_chunks` on a background thread, at most ``ahead`` chunks in memory.

    Use as a context manager: leaving it early stops the thread.
    """

    def __init__(
        self,
        files: list[InputFile],
        fmt: Format,
        columns: list[str],
        chunk_rows: int,
        ahead: int = 2,
    ) -> None:
        self._source = read_chunks(files, fmt, columns, chunk_rows)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlcycle-batch-read", daemon=True)

    def __enter__(self) -> ChunkReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[pa.Table, pd.DataFrame]]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
