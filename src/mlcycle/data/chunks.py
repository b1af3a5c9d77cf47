"""Reading a file source in bounded chunks: Parquet by row batches, CSV by pyarrow's
streaming reader (malformed lines reported with their line number, or skipped and
reported to the caller, by ``data.source.on_bad_lines``).

Example:
    >>> skipped: list[int | None] = []
    >>> for chunk in chunks(Source(path="data/"), Path("."), None, 250_000, skipped.append):
    ...     print(len(chunk))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.data.encoding import encoding_error, sniff_text
from mlcycle.data.sources import match_files
from mlcycle.data.sqlsource import read_sql_chunks
from mlcycle.errors import BadInput
from mlcycle.spec import Source

_CSV_BLOCK = 1 << 22  # 4 MiB

SkippedLine = Callable[[int | None], None]
"""Called with the line number (None if pyarrow does not know it) of each CSV line skipped."""


def chunks(
    source: Source, base_dir: Path, after: Any, chunk_rows: int, skipped: SkippedLine
) -> Iterator[pd.DataFrame]:
    """The source's rows in chunks of about ``chunk_rows`` (SQL: only rows past ``after``).

    Every file of a folder or glob must hold the same columns; each malformed CSV
    line skipped (``on_bad_lines: warn``) is reported to ``skipped``, so the
    caller keeps the count without the reader knowing what it reports into.

    Example:
        >>> lines: list[int | None] = []
        >>> frames = list(chunks(Source(path="d.csv", on_bad_lines="warn"), Path("."),
        ...                      None, 1000, lines.append))
        >>> lines
        [3]
    """
    if source.sql is not None:
        yield from read_sql_chunks(source, base_dir, after, chunk_rows)
        return
    matched = match_files(source, base_dir)
    columns: list[str] | None = None
    for path in matched.files:
        fmt = matched.format_of(path, source.format)
        name = matched.display(path)
        reader = _parquet_chunks if fmt == "parquet" else _csv_chunks
        for chunk in reader(matched.fs, path, name, chunk_rows, source, skipped):
            cols = [str(c) for c in chunk.columns]
            if columns is None:
                columns = cols
            elif set(cols) != set(columns):
                missing = [c for c in columns if c not in cols]
                extra = [c for c in cols if c not in columns]
                raise BadInput(
                    f"data files of '{source.shown}' have different columns",
                    f"{name}: missing {missing}, extra {extra}",
                    "make every file of the source hold the same columns",
                )
            yield chunk if cols == columns else chunk[columns]


def _parquet_chunks(
    fs: Any, path: str, name: str, chunk_rows: int, source: Source, skipped: SkippedLine
) -> Iterator[pd.DataFrame]:
    try:
        with fs.open(path, "rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise BadInput(
            f"cannot read data file {name} as Parquet",
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            "check the file is a complete Parquet file (export it again), or set "
            "data.source.format to csv if it is CSV",
        ) from exc


def _csv_chunks(
    fs: Any, path: str, name: str, chunk_rows: int, source: Source, skipped: SkippedLine
) -> Iterator[pd.DataFrame]:
    import pyarrow.csv as pcsv

    bad: list[tuple[int | None, str]] = []

    def on_bad(row: Any) -> str:
        bad.append((row.number, row.text))
        if source.on_bad_lines == "warn":
            skipped(None if row.number is None else int(row.number))
            return "skip"
        return "error"

    encoding = source.encoding
    sniff_text(fs, path, name, encoding)
    # Small blocks: the streaming reader reads many blocks ahead, so its memory
    # grows with the block size; blocks are gathered into chunks of chunk_rows.
    options = pcsv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK, encoding=encoding)
    parse = pcsv.ParseOptions(invalid_row_handler=on_bad)
    # An empty text field is a missing value, as pandas (read_source) reads it; else a
    # missing label would land as '' and count as a class of its own.
    convert = pcsv.ConvertOptions(strings_can_be_null=True)
    try:
        with fs.open(path, "rb", compression="infer") as fh:
            reader = pcsv.open_csv(
                fh, read_options=options, parse_options=parse, convert_options=convert
            )
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                if any(pa.types.is_binary(f.type) for f in batch.schema):
                    # pyarrow keeps text it cannot decode as raw bytes: it would
                    # reach the contract as b'EWR\xe9', so refuse it here instead.
                    raise encoding_error(fs, path, name, encoding, None)
                pending.append(batch)
                rows += batch.num_rows
                if rows >= chunk_rows:
                    yield pa.Table.from_batches(pending).to_pandas()
                    pending, rows = [], 0
            if pending:
                yield pa.Table.from_batches(pending).to_pandas()
    except pa.ArrowInvalid as exc:
        text = str(exc).splitlines()[0]
        if "invalid UTF8" in text:
            # Undecodable bytes after the first block, in a column typed as text.
            raise encoding_error(fs, path, name, encoding, None) from None
        if bad and source.on_bad_lines == "error":
            line, content = bad[-1]
            raise BadInput(
                f"data file {name} is malformed at line {line}",
                f"{text} (line: {content[:120]!r}); nothing was landed",
                "fix that line, or set data.source.on_bad_lines: warn to skip and record "
                "malformed lines",
            ) from None
        raise BadInput(
            f"cannot read data file {name} as CSV",
            f"{text}; a column's values changed type part-way through the file?",
            "fix the values, or export the file again; nothing was landed",
        ) from None
    except pa.ArrowException as exc:
        raise BadInput(f"cannot read data file {name} as CSV", str(exc), "check the file") from exc
    except UnicodeError as exc:
        # A declared encoding's codec refused the bytes (pyarrow transcodes through it).
        raise encoding_error(fs, path, name, encoding, exc) from None
    except (OSError, EOFError) as exc:
        raise BadInput(
            f"cannot read data file {name} as CSV", str(exc), "check the file is complete"
        ) from exc
