"""Batch outputs on an fsspec filesystem (``s3://…``, ``gs://…``): staged locally, then published.

A batch job writes its output and rejects to local temporary files and
renames them into place, so a failed job leaves nothing behind. Object
stores have no rename that makes a half-written file invisible, so a job
whose output is a URL runs exactly as a local one into a local staging
folder, and only a finished job is published: each file is uploaded under a
temporary name beside its target and then moved onto it (on S3 a
server-side copy: readers see the old object or the whole new one). A
failed upload removes what it left. The ``file://`` scheme is a local path.

Example:
    >>> with staged("s3://bucket/scored/july.parquet") as local:
    ...     result = run_job(local)          # writes local, maybe local rejects
    ...     publish(result, "s3://bucket/scored/july.parquet")
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlcycle.errors import BadInput
from mlcycle.serve.batch.io import format_of, rejects_name


def is_remote(path: str) -> bool:
    """An fsspec URL other than ``file://``.

    Example:
        >>> is_remote("s3://bucket/x.parquet"), is_remote("file:///tmp/x.parquet")
        (True, False)
    """
    return "://" in path and not path.startswith("file://")


@contextlib.contextmanager
def staged(url: str) -> Iterator[Path]:
    """A local path, in a temporary folder, to run the job into; the folder goes afterwards.

    Example:
        >>> with staged("s3://bucket/scored.parquet") as local:
        ...     publish(run_job(local), "s3://bucket/scored.parquet")
    """
    _filesystem(url)  # a URL that cannot be written fails before any work is done
    name = posixpath.basename(url)
    if not name:
        raise BadInput(
            f"cannot write {url}",
            "the URL names a folder, not a file",
            "name an output file, e.g. s3://bucket/scored.parquet",
        )
    if format_of(Path(name)) is None:
        raise BadInput(
            f"cannot tell the output format of {url}",
            "the output format follows the file suffix",
            "name the output *.parquet or *.csv",
        )
    with tempfile.TemporaryDirectory(prefix="mlcycle-predict-") as folder:
        yield Path(folder) / name


def publish(result: dict[str, Any], url: str) -> dict[str, Any]:
    """Upload a finished job's output (and rejects) to ``url``; the result names the URLs.

    A rejects file left at the target from an earlier run is removed, as for
    local outputs: it would describe other rows.

    Example:
        >>> publish(result, "s3://bucket/scored.parquet")["output"]
        's3://bucket/scored.parquet'
    """
    fs, path = _filesystem(url)
    rejects_path = posixpath.join(posixpath.dirname(path), rejects_name(posixpath.basename(path)))
    rejects_url = posixpath.join(posixpath.dirname(url), rejects_name(posixpath.basename(url)))
    try:
        if result["rejects"] is not None:
            _upload(fs, result["rejects"], rejects_path)
        elif fs.exists(rejects_path):
            fs.rm(rejects_path)
        _upload(fs, result["output"], path)
    except Exception as exc:  # each fsspec backend raises its own kinds
        raise BadInput(
            f"cannot write {url}",
            f"{type(exc).__name__}: {exc}",
            "check the URL, your credentials and that you may write there",
        ) from None
    published = rejects_url if result["rejects"] is not None else None
    return {**result, "output": url, "rejects": published}


def _upload(fs: Any, local: str, path: str) -> None:
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        fs.put_file(local, temporary)
        fs.mv(temporary, path)
    except BaseException:
        with contextlib.suppress(Exception):
            if fs.exists(temporary):
                fs.rm(temporary)
        raise


def _filesystem(url: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise BadInput(
            f"cannot write {url}",
            f"{type(exc).__name__}: {exc}",
            "check the URL and that the fsspec backend for it (e.g. s3fs) is installed",
        ) from None
