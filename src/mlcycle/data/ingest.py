"""Incremental ingest: read what is new in a source and land it as a raw partition.

With ``data.source.watermark`` set (append mode), an ingest reads only rows whose
watermark is newer than the newest one already landed, drops rows whose id
(``problem.id_column``) was seen before or repeats within the batch, and lands
the rest as one new immutable partition (see :mod:`mlcycle.data.landing`).
Without a watermark (snapshot mode), an ingest lands the whole source again
when its bytes (or, for SQL, its row count) changed, and a dataset version is
built from the newest snapshot alone.

Files (CSV, Parquet; a file, folder, glob or fsspec URL) are streamed in chunks,
so memory stays bounded however large the source; SQL sources are read with a
server-side ``WHERE watermark > :last`` and retried with backoff when the
server cannot be reached.

Example:
    >>> result = ingest(store, spec.data.source, spec_dir, id_column="flight_id")
    >>> result.rows_new, result.partition.path
    (27004, 'main/ingested_at=2026-11-26T150102.123456Z/part-0.parquet')
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.data.chunks import chunks
from mlcycle.data.landing import LANDED, Partition, RawRoot, list_partitions
from mlcycle.data.sources import fingerprint_source
from mlcycle.data.sqlsource import probe_sql
from mlcycle.errors import BadInput
from mlcycle.spec import Source
from mlcycle.store import Store
from mlcycle.store.blobs import hash_file

CHUNK_ROWS = 250_000
_SHOWN_LINES = 20  # line numbers of skipped CSV lines kept for the report

Progress = Callable[[int], None]


@dataclass
class IngestResult:
    """What one ingest read, skipped and landed."""

    source: str
    mode: str  # append | snapshot
    partition: Partition | None
    rows_read: int = 0
    rows_new: int = 0
    duplicates: int = 0
    late: int = 0
    null_watermark: int = 0
    bad_lines: list[int] = field(default_factory=list)
    bad_line_count: int = 0
    watermark_before: str | None = None
    watermark_after: str | None = None
    seconds: float = 0.0
    note: str = ""

    def skip_line(self, line: int | None) -> None:
        """Count one malformed CSV line skipped, keeping the first few line numbers.

        Example:
            >>> result.skip_line(3); result.bad_line_count, result.bad_lines
            (1, [3])
        """
        self.bad_line_count += 1
        if len(self.bad_lines) < _SHOWN_LINES and line is not None:
            self.bad_lines.append(line)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values, the partition as its summary.

        Example:
            >>> ingest(store, source, Path(".")).to_dict()["rows_new"]
            1200
        """
        out = {k: v for k, v in self.__dict__.items() if k != "partition"}
        out["partition"] = self.partition.summary() if self.partition else None
        return out

    @property
    def warnings(self) -> list[str]:
        """What a person should know about the rows this ingest did not land.

        Example:
            >>> IngestResult(source="main", mode="append", partition=None, duplicates=2).warnings
            ['2 row(s) with an id already seen were dropped']
        """
        found = []
        if self.duplicates:
            found.append(f"{self.duplicates} row(s) with an id already seen were dropped")
        if self.late:
            found.append(
                f"{self.late} row(s) arrived late (watermark at or below the last one) and "
                "were skipped"
            )
        if self.null_watermark:
            found.append(f"{self.null_watermark} row(s) without a watermark were skipped")
        if self.bad_line_count:
            found.append(
                f"{self.bad_line_count} malformed CSV line(s) skipped, e.g. lines "
                f"{self.bad_lines[:5]}"
            )
        return found


def source_fingerprint(source: Source, base_dir: Path) -> str:
    """A cheap identity of what the source holds now (file bytes, or a SQL probe).

    Example:
        >>> source_fingerprint(Source(path="data/flights.parquet"), Path("."))[:8]
        '3b9f0c51'
    """
    if source.sql is not None:
        count, newest = probe_sql(source, base_dir)
        payload = [source.sql, source.watermark, count, newest]
        return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()
    files = fingerprint_source(source, base_dir)
    if source.encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        return files  # the default: fingerprints from before `encoding` existed still match
    # The same bytes read with another encoding are other rows: land them again.
    return hashlib.sha256(f"{files}:{source.encoding}".encode()).hexdigest()


def ingest(
    store: Store,
    source: Source,
    base_dir: Path,
    *,
    id_column: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> IngestResult:
    """Land the source's new rows as one raw partition; ``partition`` is None if none.

    Example:
        >>> r = ingest(store, Source(path="data/", watermark="time_hour"), Path("."))
        >>> r.mode, r.rows_new
        ('append', 1200)
    """
    raw = RawRoot(store)
    # One ingest of a source at a time on this machine: two would both read the
    # same watermark and land the same rows twice.
    with raw.lock(source.name):
        return _ingest(
            raw, source, base_dir, id_column=id_column, chunk_rows=chunk_rows, progress=progress
        )


def _ingest(
    raw: RawRoot,
    source: Source,
    base_dir: Path,
    *,
    id_column: str | None,
    chunk_rows: int,
    progress: Progress | None,
) -> IngestResult:
    started = time.perf_counter()
    raw.sweep(source.name)
    landed = list_partitions(raw.store, source.name)
    mode = "append" if source.watermark else "snapshot"
    result = IngestResult(source=source.name, mode=mode, partition=None)
    fingerprint = source_fingerprint(source, base_dir)
    if landed and landed[-1].source_fingerprint == fingerprint:
        result.note = "nothing new: the source is unchanged since the last ingest"
        result.watermark_before = result.watermark_after = landed[-1].watermark_max
        result.seconds = time.perf_counter() - started
        return result

    after = _last_watermark(landed) if source.watermark else None
    result.watermark_before = encode_watermark(after) if after is not None else None
    seen = _seen_ids(raw, landed, id_column) if id_column and mode == "append" else _Seen()
    writer = _PartitionWriter(raw, source.name)
    try:
        marks = _land_new_rows(
            writer, source, base_dir, after, seen, result, id_column, chunk_rows, progress
        )
        if result.rows_new == 0:
            writer.abort()
            if mode == "snapshot":
                raise BadInput(
                    f"data source '{source.shown}' has no rows",
                    "it holds column names but no data",
                    "point data.source at data",
                )
            result.note = "nothing new: no row is newer than the last watermark"
            result.watermark_after = result.watermark_before
            result.seconds = time.perf_counter() - started
            return result
        result.watermark_after = (
            encode_watermark(marks.newest_new)
            if marks.newest_new is not None
            else result.watermark_before
        )
        result.partition = writer.finish(
            source_fingerprint=fingerprint,
            watermark_column=source.watermark,
            watermark_min=(
                encode_watermark(marks.oldest_new) if marks.oldest_new is not None else None
            ),
            watermark_max=result.watermark_after,
            details={k: v for k, v in result.to_dict().items() if k != "partition"},
        )
    except BaseException:
        writer.abort()
        raise
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class _Marks:
    """The watermarks one ingest saw: the newest read at all, and the span it lands."""

    newest: Any = None
    oldest_new: Any = None
    newest_new: Any = None


def _last_watermark(landed: list[Partition]) -> Any:
    """The newest watermark already landed (rows at or below it are not new), or None."""
    marks = [decode_watermark(p.watermark_max) for p in landed if p.watermark_max]
    return max(marks) if marks else None


def _seen_ids(raw: RawRoot, landed: list[Partition], id_column: str) -> _Seen:
    """The ids already landed, so a row that repeats one is dropped."""
    seen = _Seen()
    for part in landed:
        try:
            ids = raw.read_column(part, id_column)
        except (KeyError, pa.ArrowInvalid):
            continue
        seen.add(_id_hashes(ids))
    return seen


def _land_new_rows(
    writer: _PartitionWriter,
    source: Source,
    base_dir: Path,
    after: Any,
    seen: _Seen,
    result: IngestResult,
    id_column: str | None,
    chunk_rows: int,
    progress: Progress | None,
) -> _Marks:
    """Stream the source, keep the rows past ``after`` whose id is new, and write them."""
    marks = _Marks()
    for chunk in chunks(source, base_dir, after, chunk_rows, result.skip_line):
        result.rows_read += len(chunk)
        if source.watermark:
            chunk, marks.newest, lo, hi = _apply_watermark(
                chunk, source.watermark, after, marks.newest, result, seen, id_column
            )
            if lo is not None:
                marks.oldest_new = lo if marks.oldest_new is None else min(marks.oldest_new, lo)
                marks.newest_new = hi if marks.newest_new is None else max(marks.newest_new, hi)
        if id_column:
            chunk = _drop_duplicates(chunk, id_column, seen, source, result)
        if len(chunk):
            writer.write(chunk)
            result.rows_new += len(chunk)
        if progress:
            progress(result.rows_read)
    if source.watermark and after is not None and marks.newest is not None and marks.newest < after:
        raise BadInput(
            f"the watermark of source '{source.name}' went backwards",
            f"its newest '{source.watermark}' is {marks.newest}, but rows up to {after} were "
            "already ingested (was the source rewritten or truncated?)",
            "restore the source, or start a fresh store for it if the old rows are wrong",
        )
    return marks


# --- watermark and ids --------------------------------------------------------------


def encode_watermark(value: Any) -> str:
    """A watermark as JSON text that keeps its kind (datetime, number or text).

    Example:
        >>> encode_watermark(42)
        '{"kind": "number", "value": 42.0}'
    """
    if isinstance(value, pd.Timestamp):
        return json.dumps({"kind": "datetime", "value": value.isoformat()})
    if isinstance(value, bool):
        return json.dumps({"kind": "number", "value": int(value)})
    if isinstance(value, (int, float)) or hasattr(value, "dtype"):
        try:
            return json.dumps({"kind": "number", "value": float(value)})
        except (TypeError, ValueError):
            pass
    return json.dumps({"kind": "text", "value": str(value)})


def decode_watermark(text: str) -> Any:
    """The watermark :func:`encode_watermark` wrote, as the kind it was.

    Example:
        >>> decode_watermark(encode_watermark(pd.Timestamp("2026-01-01", tz="UTC")))
        Timestamp('2026-01-01 00:00:00+0000', tz='UTC')
    """
    doc = json.loads(text)
    if doc["kind"] == "datetime":
        return pd.Timestamp(doc["value"])
    if doc["kind"] == "number":
        return float(doc["value"])
    return str(doc["value"])


def _apply_watermark(
    chunk: pd.DataFrame,
    column: str,
    after: Any,
    newest: Any,
    result: IngestResult,
    seen: _Seen,
    id_column: str | None,
) -> tuple[pd.DataFrame, Any, Any, Any]:
    if column not in chunk.columns:
        raise BadInput(
            f"watermark column '{column}' is not in the source",
            f"the source has columns: {', '.join(map(str, list(chunk.columns)[:30]))}",
            "set data.source.watermark to a column that grows with each new row",
        )
    values = chunk[column]
    missing = values.isna()
    result.null_watermark += int(missing.sum())
    present = values[~missing]
    if len(present):
        top = present.max()
        newest = top if newest is None else max(newest, top)
    keep = ~missing
    if after is not None:
        try:
            keep &= values > after
        except TypeError as exc:
            raise BadInput(
                f"watermark column '{column}' changed type",
                f"earlier values were like {after!r}, now {values.dtype} ({exc})",
                "keep the watermark column's type stable in the source",
            ) from None
        if id_column and id_column in chunk.columns:
            older = chunk.loc[~keep & ~missing, id_column]
            if len(older):
                result.late += int((~seen.contains(_id_hashes(older))).sum())
    kept = chunk[keep]
    lo = hi = None
    if len(kept):
        lo, hi = kept[column].min(), kept[column].max()
    return kept, newest, lo, hi


def _id_hashes(ids: pd.Series) -> np.ndarray:
    """uint64 hashes of ids; numbers hash as numbers, anything else as its text."""
    if pd.api.types.is_integer_dtype(ids.dtype) and not ids.isna().any():
        values = ids.to_numpy(dtype=np.int64)
    else:
        values = ids.astype(str).to_numpy(dtype=object)
    return np.asarray(pd.util.hash_array(values), dtype=np.uint64)


class _Seen:
    """A set of uint64 id hashes with vectorized membership (pandas' C hash table)."""

    def __init__(self) -> None:
        from pandas._libs import hashtable  # type: ignore[attr-defined]

        self._table = hashtable.UInt64HashTable()

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        if not len(self._table):
            return np.zeros(len(hashes), dtype=bool)
        return np.asarray(self._table.lookup(hashes)) != -1

    def add(self, hashes: np.ndarray) -> None:
        if len(hashes):
            self._table.map_locations(hashes)


def _drop_duplicates(
    chunk: pd.DataFrame, id_column: str, seen: _Seen, source: Source, result: IngestResult
) -> pd.DataFrame:
    if id_column not in chunk.columns:
        raise BadInput(
            f"id column '{id_column}' is not in the source",
            "problem.id_column names it; ingest drops repeated ids by it",
            "set problem.id_column to a column of the source, or remove it",
        )
    hashes = _id_hashes(chunk[id_column])
    repeated = seen.contains(hashes) | pd.Series(hashes).duplicated().to_numpy()
    seen.add(hashes)
    mask = pd.Series(repeated, index=chunk.index, dtype=bool)
    count = int(mask.sum())
    if count and source.duplicates == "error":
        examples = [str(v) for v in chunk.loc[mask, id_column].head(5)]
        raise BadInput(
            f"{count} row(s) of source '{source.name}' repeat an id in '{id_column}'",
            f"ids seen before or twice in this batch, e.g. {examples}; nothing was landed",
            "fix the source, or set data.source.duplicates: drop to keep the first row per id",
        )
    result.duplicates += count
    return chunk[~mask] if count else chunk


# --- writing ------------------------------------------------------------------------


class _PartitionWriter:
    """Streams chunks into one Parquet file in a private temporary place."""

    def __init__(self, raw: RawRoot, source: str) -> None:
        self.raw = raw
        self.source = source
        if raw.local:
            self.folder = Path(raw.root) / source / f".tmp-{uuid.uuid4().hex}"
        else:
            self.folder = raw.store.blobs.new_staging()
        self.file = self.folder / "part-0.parquet"
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, chunk: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(chunk, preserve_index=False)
        if self.writer is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.file, table.schema)
        elif not table.schema.equals(self.writer.schema):
            table = self._conform(table)
        self.writer.write_table(table)
        self.rows += len(chunk)

    def _conform(self, table: pa.Table) -> pa.Table:
        assert self.writer is not None
        target = self.writer.schema
        try:
            return table.select(target.names).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError):
            changed = [
                f"{f.name}: {f.type} → {table.schema.field(f.name).type}"
                for f in target
                if f.name in table.schema.names and table.schema.field(f.name).type != f.type
            ]
            raise BadInput(
                f"a column of source '{self.source}' changed type part-way through",
                f"{'; '.join(changed[:5]) or 'incompatible columns'}; nothing was landed",
                "keep each column's type stable across the source's files and rows",
            ) from None

    def finish(self, **fields: Any) -> Partition:
        assert self.writer is not None
        self.writer.close()
        self.writer = None
        # The file's bytes: the same rows read the same way give the same hash (and
        # hashing 20 MB of Parquet is far cheaper than hashing every row again).
        partition = self.raw.land(
            self.file,
            source=self.source,
            rows=self.rows,
            content_hash=hash_file(self.file),
            **fields,
        )
        self.abort()
        return partition

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(OSError, pa.ArrowException):
                self.writer.close()
            self.writer = None
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


__all__ = ["LANDED", "IngestResult", "decode_watermark", "encode_watermark", "ingest"]
