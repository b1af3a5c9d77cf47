"""Reading a data source into a DataFrame, and fingerprinting it for cache keys.

A :class:`~mlcycle.spec.Source` names a file, a folder (every ``*.parquet`` /
``*.csv`` in it, sorted by name) or a glob. A relative path is relative to the
spec's folder; an absolute path or any fsspec URL (``file://``, ``memory://``,
``s3://`` when the filesystem package is installed) works as well.

Every way the input can be wrong ends in :class:`~mlcycle.errors.BadInput`
(or :class:`~mlcycle.errors.NotFound` for a missing path) naming the file.

Example:
    >>> from mlcycle.spec import Source
    >>> df = read_source(Source(path="data/flights.parquet"), Path("."))
    >>> fingerprint_source(Source(path="data/flights.parquet"), Path("."))[:12]
    '3b9f0c51e2aa'
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import fsspec
import pandas as pd
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from mlcycle.data.encoding import encoding_error, sniff_text
from mlcycle.errors import BadInput, NotFound
from mlcycle.spec import Source

Format = Literal["parquet", "csv"]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_Compression = Literal["gzip", "bz2", "xz"]
_CSV_COMPRESSION: dict[str, _Compression] = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz"}
_CSV_SUFFIXES = (".csv", *(".csv" + ext for ext in _CSV_COMPRESSION))
_GLOB_CHARS = re.compile(r"[*?\[]")
_CHUNK = 1 << 20  # 1 MiB: large enough that the hashing loop is not Python-bound
_LISTED = 20  # how many folder entries an error message shows


@dataclass(frozen=True)
class MatchedFiles:
    """The files a source resolves to, with the root their names are relative to.

    Example:
        >>> matched = match_files(Source(path="data/"), Path("."))
        >>> [matched.format_of(p, "auto") for p in matched.files]
        ['parquet', 'parquet']
    """

    fs: fsspec.AbstractFileSystem
    root: str
    files: list[str]
    shown: str  # the source as the user wrote it, for messages

    def display(self, path: str) -> str:
        """A file's name for messages: a plain path if local, else its full URL.

        Example:
            >>> match_files(Source(path="memory://raw/a.csv"), Path(".")).display("/raw/a.csv")
            'memory:///raw/a.csv'
        """
        return _display(self.fs, path)

    def format_of(self, path: str, fmt: str) -> Format:
        """The format to read ``path`` with: ``fmt`` unless "auto", else by its suffix.

        Example:
            >>> matched.format_of("/data/a.csv.gz", "auto")
            'csv'
        """
        return _format_of(path, fmt, self)


def read_source(source: Source, base_dir: Path) -> pd.DataFrame:
    """Read every file of ``source`` into one DataFrame (rows in file-name order).

    Parquet is read with pyarrow, CSV with pandas (C parser, ``on_bad_lines="error"``
    so that a malformed row is reported with its line number instead of being
    dropped silently). Files of a folder or glob must have the same columns.

    Example:
        >>> df = read_source(Source(path="data/"), Path("/project"))  # all files in data/
        >>> df = read_source(Source(path="memory://raw/*.csv"), Path("."))
    """
    matched = match_files(source, base_dir)
    frames: list[pd.DataFrame] = []
    for path in matched.files:
        fmt = _format_of(path, source.format, matched)
        frames.append(_read_one(matched.fs, path, fmt, source.encoding))
    df = frames[0] if len(frames) == 1 else _concat(frames, matched)
    if len(df) == 0:
        raise BadInput(
            f"data source '{matched.shown}' has no rows",
            f"{_names(matched)} hold(s) column names but no data",
            "point data.source.path at a file with data",
        )
    return df


def fingerprint_source(source: Source, base_dir: Path) -> str:
    """A stable sha256 of the source's bytes, cheap enough to compute on every run.

    It covers, for every matched file in order, its name relative to the source
    root, its size and the sha256 of its bytes; so renaming the project folder
    keeps the fingerprint, while touching a byte or renaming a file changes it.

    Example:
        >>> key = fingerprint_source(Source(path="data/flights.parquet"), Path("."))
        >>> len(key)
        64
    """
    matched = match_files(source, base_dir)
    outer = hashlib.sha256()
    for path in matched.files:
        inner = hashlib.sha256()
        size = 0
        try:
            with matched.fs.open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK):
                    inner.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise BadInput(
                f"cannot read {_display(matched.fs, path)}",
                str(exc),
                "check the file's permissions and that it is not being written",
            ) from exc
        record = [_relative(path, matched.root), size, inner.hexdigest()]
        outer.update(json.dumps(record).encode())
        outer.update(b"\n")
    return outer.hexdigest()


def content_hash(df: pd.DataFrame) -> str:
    """sha256 of a frame's rows, column names and dtypes, independent of file encoding.

    Two frames with the same values in the same order hash equally whether they
    came from CSV or Parquet; text columns count as one dtype ("text") whether
    pandas holds them as ``object`` or ``str``. Row order matters; the index
    does not.

    Example:
        >>> content_hash(pd.DataFrame({"a": [1, 2]})) == content_hash(pd.DataFrame({"a": [1, 2]}))
        True
    """
    digest = hashlib.sha256()
    header = [[str(name), _dtype_label(dtype)] for name, dtype in df.dtypes.items()]
    digest.update(json.dumps({"rows": len(df), "columns": header}).encode())
    if df.shape[1]:
        digest.update(_row_hashes(df).tobytes())
    return digest.hexdigest()


# --- resolving a source to files ----------------------------------------------------


def match_files(source: Source, base_dir: Path) -> MatchedFiles:
    """Resolve a file source to its files (a file, a folder's data files, or a glob).

    Hidden files and Spark markers are left out; a missing path, an empty folder
    or a folder mixing formats is a :class:`~mlcycle.errors.BadInput` or
    :class:`~mlcycle.errors.NotFound` naming what the folder holds.

    Example:
        >>> match_files(Source(path="data/*.csv"), Path("/project")).files
        ['/project/data/2026-01.csv', '/project/data/2026-02.csv']
    """
    raw = source.path
    if raw is None:
        raise BadInput(
            "this data source is a SQL query, not files",
            "only file sources (data.source.path) can be read as files",
            "use the SQL reader (mlcycle.data.ingest) for data.source.sql",
        )
    if "://" in raw:
        url = raw
    else:
        local = Path(raw).expanduser()
        url = str(local if local.is_absolute() else Path(base_dir) / local)
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise BadInput(
            f"cannot open data source '{raw}'",
            str(exc),
            "use a local path or a URL whose filesystem package is installed",
        ) from exc
    path = path.rstrip("/") or path

    if _GLOB_CHARS.search(path):
        root = _glob_root(path)
        files = sorted(p for p, info in fs.glob(path, detail=True).items() if _is_file(info))
        files = [p for p in files if not _hidden(p)]
        if not files:
            raise NotFound(
                f"no files match data source '{raw}'",
                _listing(fs, root),
                "fix data.source.path in mlcycle.yaml (relative paths start at the spec's folder)",
            )
        return MatchedFiles(fs, root, files, raw)

    if fs.isdir(path):
        wanted = _suffixes_for(source.format)
        # detail=True: the listing already says what is a file (no request per entry).
        entries = sorted(e["name"] for e in fs.ls(path, detail=True) if _is_file(e))
        files = [p for p in entries if not _hidden(p) and p.lower().endswith(wanted)]
        if not files:
            kinds = " / ".join(f"*{s}" for s in wanted)
            raise NotFound(
                f"data source folder '{raw}' holds no {kinds} files",
                _listing(fs, path),
                "put the data files in that folder or point data.source.path at a file",
            )
        if source.format == "auto":
            formats = {_format_of(p, "auto", None) for p in files}
            if len(formats) > 1:
                raise BadInput(
                    f"data source folder '{raw}' mixes Parquet and CSV files",
                    "one dataset must come in one format, or the columns' types would differ "
                    "between files",
                    "keep one format in the folder, or set data.source.format to choose one",
                )
        return MatchedFiles(fs, path, files, raw)

    if fs.isfile(path):
        return MatchedFiles(fs, posixpath.dirname(path), [path], raw)

    parent = posixpath.dirname(path)
    raise NotFound(
        f"data source '{raw}' not found",
        f"{_display(fs, path)} does not exist; " + _listing(fs, parent),
        "fix data.source.path in mlcycle.yaml (relative paths start at the spec's folder)",
    )


def _suffixes_for(fmt: str) -> tuple[str, ...]:
    if fmt == "parquet":
        return _PARQUET_SUFFIXES
    if fmt == "csv":
        return _CSV_SUFFIXES
    return _PARQUET_SUFFIXES + _CSV_SUFFIXES


def _format_of(path: str, fmt: str, matched: MatchedFiles | None) -> Format:
    if fmt == "parquet":
        return "parquet"
    if fmt == "csv":
        return "csv"
    lower = path.lower()
    if lower.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(_CSV_SUFFIXES):
        return "csv"
    name = _display(matched.fs, path) if matched else path
    raise BadInput(
        f"unknown format of data file {name}",
        "format 'auto' decides by the suffix: .parquet/.pq for Parquet, .csv (optionally "
        ".gz/.bz2/.xz) for CSV",
        "rename the file or set data.source.format to parquet or csv",
    )


def _glob_root(path: str) -> str:
    """The folder part of a glob before its first wildcard (names are relative to it)."""
    head = _GLOB_CHARS.split(path, maxsplit=1)[0]
    return head if head.endswith("/") and len(head) > 1 else posixpath.dirname(head)


def _is_file(info: Any) -> bool:
    return isinstance(info, dict) and info.get("type") == "file"


def _hidden(path: str) -> bool:
    # Dot-files and Spark/Hadoop markers (_SUCCESS, _metadata) are not data.
    return posixpath.basename(path).startswith((".", "_"))


def _relative(path: str, root: str) -> str:
    if root and path.startswith(root.rstrip("/") + "/"):
        return path[len(root.rstrip("/")) + 1 :]
    return posixpath.basename(path)


def _display(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return path if isinstance(fs, LocalFileSystem) else str(fs.unstrip_protocol(path))


def _names(matched: MatchedFiles) -> str:
    names = [_relative(p, matched.root) for p in matched.files]
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _listing(fs: fsspec.AbstractFileSystem, folder: str) -> str:
    """What a folder holds, for a not-found message."""
    try:
        if not folder or not fs.isdir(folder):
            return f"the folder {_display(fs, folder or '.')} does not exist either"
        entries = sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(folder, detail=False))
    except OSError:
        return f"the folder {_display(fs, folder)} cannot be listed"
    if not entries:
        return f"the folder {_display(fs, folder)} is empty"
    more = f" and {len(entries) - _LISTED} more" if len(entries) > _LISTED else ""
    return f"the folder {_display(fs, folder)} holds: {', '.join(entries[:_LISTED])}{more}"


# --- reading ------------------------------------------------------------------------


def _read_one(
    fs: fsspec.AbstractFileSystem, path: str, fmt: Format, encoding: str = "utf-8"
) -> pd.DataFrame:
    name = _display(fs, path)
    try:
        size = int(fs.size(path))
    except OSError as exc:
        raise BadInput(f"cannot read data file {name}", str(exc), "check the file") from exc
    if size == 0:
        raise BadInput(
            f"data file {name} is empty",
            "it has zero bytes (an interrupted copy or export?)",
            "export the data again, or remove the file",
        )
    if fmt == "parquet":
        return _read_parquet(fs, path, name)
    return _read_csv(fs, path, name, encoding)


def _read_parquet(fs: fsspec.AbstractFileSystem, path: str, name: str) -> pd.DataFrame:
    try:
        if isinstance(fs, LocalFileSystem):
            # A plain path lets pyarrow memory-map the file instead of reading via Python.
            return pd.read_parquet(path, engine="pyarrow")
        with fs.open(path, "rb") as fh:
            return pd.read_parquet(fh, engine="pyarrow")
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadInput(
            f"cannot read data file {name} as Parquet",
            _first_line(exc),
            "check the file is a complete Parquet file (export it again), or set "
            "data.source.format to csv if it is CSV",
        ) from exc


_LINE = re.compile(r"\bline (\d+)")
_ROW = re.compile(r"\brow (\d+)")


def _read_csv(
    fs: fsspec.AbstractFileSystem, path: str, name: str, encoding: str = "utf-8"
) -> pd.DataFrame:
    compression = next(
        (c for ext, c in _CSV_COMPRESSION.items() if path.lower().endswith(ext)), None
    )
    sniff_text(fs, path, name, encoding)
    try:
        with fs.open(path, "rb") as fh:
            # low_memory=False: one dtype per column for the whole file, not per chunk.
            return pd.read_csv(
                fh,
                on_bad_lines="error",
                low_memory=False,
                compression=compression,
                encoding=encoding,
            )
    except pd.errors.EmptyDataError as exc:
        raise BadInput(
            f"data file {name} is empty",
            "it holds no header and no rows",
            "export the data again, or remove the file",
        ) from exc
    except pd.errors.ParserError as exc:
        text = _first_line(exc)
        line = _line_of(text)
        where = f" at line {line}" if line else ""
        raise BadInput(
            f"data file {name} is malformed{where}",
            text.removeprefix("Error tokenizing data. C error: "),
            "fix that line (every row needs as many fields as the header; quote fields "
            "holding commas), or export the file again",
        ) from exc
    except UnicodeError as exc:
        raise encoding_error(fs, path, name, encoding, exc) from None
    except (OSError, EOFError, ValueError) as exc:
        raise BadInput(
            f"cannot read data file {name} as CSV",
            _first_line(exc),
            "check the file (and its compression) is complete",
        ) from exc


def _line_of(message: str) -> int | None:
    """The 1-based line a pandas C-parser error points at, if it says."""
    if found := _LINE.search(message):
        return int(found.group(1))
    if found := _ROW.search(message):
        # "EOF inside string starting at row N" counts lines from 0.
        return int(found.group(1)) + 1
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _concat(frames: list[pd.DataFrame], matched: MatchedFiles) -> pd.DataFrame:
    first = list(frames[0].columns)
    for path, frame in zip(matched.files[1:], frames[1:], strict=True):
        cols = list(frame.columns)
        if set(cols) != set(first):
            missing = [c for c in first if c not in cols]
            extra = [c for c in cols if c not in first]
            raise BadInput(
                f"data files of '{matched.shown}' have different columns",
                f"{_relative(path, matched.root)} vs {_relative(matched.files[0], matched.root)}"
                f": missing {missing}, extra {extra}",
                "make every file of the source hold the same columns",
            )
    aligned = [f if list(f.columns) == first else f[first] for f in frames]
    return pd.concat(aligned, ignore_index=True)


# --- hashing ------------------------------------------------------------------------


def _dtype_label(dtype: Any) -> str:
    # object and the str/string dtypes hold the same text; the label must not depend
    # on which one a reader chose, or the same data would hash differently.
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        return "text"
    return str(dtype)


def _row_hashes(df: pd.DataFrame) -> Any:
    try:
        return pd.util.hash_pandas_object(df, index=False).to_numpy()
    except TypeError:
        # Unhashable cells (lists, dicts) in object columns: hash their text instead.
        fixed = df.copy()
        for position, dtype in enumerate(fixed.dtypes):
            if pd.api.types.is_object_dtype(dtype):
                fixed.isetitem(position, fixed.iloc[:, position].map(repr).to_numpy())
        return pd.util.hash_pandas_object(fixed, index=False).to_numpy()
