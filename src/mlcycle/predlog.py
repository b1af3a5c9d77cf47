"""The prediction log's contract, shared by serving (which writes it) and monitoring (which
reads it): its location, layout, roles and base columns, defined once here.

Layout: ``<root>/<model>/date=YYYY-MM-DD/<uuid>.parquet``,
each file written whole and never appended to. ``root`` is
``MLCYCLE_PREDICTIONS_URL`` when set (any fsspec URL), else
``<MLCYCLE_ARTIFACTS_URL>/predictions`` when the artifacts are on object
storage (team mode: every machine finds the log where the artifacts are),
else ``<project>/.mlcycle/predictions``. Columns: ``request_id``, ``ts`` (UTC),
``model``, ``model_version``, ``role``, one column per model feature,
``row_id``, ``prediction`` (string label, or float for regression),
``probability`` (P(positive) for binary), ``proba_<class>`` for multiclass,
``out_of_range`` (the features whose value lay outside the training range,
comma-separated; null when none) and ``latency_ms`` (the model time of the
request the row came in, in milliseconds: every row of a request has the same;
null where not measured, e.g. batch rows). Files written before
``out_of_range`` or ``latency_ms`` existed read with them null
(:data:`OPTIONAL_COLUMNS`).

Example:
    >>> root = predictions_root(store.home)
    >>> write_predictions(root, "flights", frame)
    ['.../flights/date=2013-07-01/3f2a….parquet']
    >>> list_files(root, "flights")[:1]
    ['.../flights/date=2013-07-01/3f2a….parquet']
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlcycle.bundle import check_model_name
from mlcycle.errors import BadInput

ENV_URL = "MLCYCLE_PREDICTIONS_URL"
#: Columns every log file has besides the features and the per-class probabilities.
BASE_COLUMNS = ("request_id", "ts", "model", "model_version", "role", "row_id", "prediction")
ROLES = ("champion", "challenger", "shadow", "batch")
#: The column marking rows scored with a number outside its training range.
OUT_OF_RANGE = "out_of_range"
#: The column holding each row's request model time, in milliseconds.
LATENCY_MS = "latency_ms"
#: Columns added after the first log files were written: read as null from older files.
OPTIONAL_COLUMNS: dict[str, pa.DataType] = {OUT_OF_RANGE: pa.string(), LATENCY_MS: pa.float64()}


def out_of_range_column(masks: Mapping[str, np.ndarray], rows: int) -> pa.Array:
    """The ``out_of_range`` column: per row, the features outside their range joined by
    ``,`` (in ``masks`` order), null for a row in range.

    ``masks`` maps a feature to the boolean mask of its rows outside the range
    (features with none may be left out).

    Example:
        >>> out_of_range_column({"month": np.array([True, False])}, 2).to_pylist()
        ['month', None]
    """
    if not masks:
        return pa.nulls(rows, pa.string())
    flagged = np.logical_or.reduce(list(masks.values()))
    labels = np.full(rows, None, dtype=object)
    for i in np.flatnonzero(flagged).tolist():  # the rare rows only
        labels[i] = ",".join(name for name, mask in masks.items() if mask[i])
    return pa.array(labels, pa.string(), from_pandas=True)


def predictions_root(home: Path) -> str:
    """``MLCYCLE_PREDICTIONS_URL`` if set, else ``<MLCYCLE_ARTIFACTS_URL>/predictions`` for
    artifacts on object storage (``s3://…``), else ``<store home>/predictions``.

    Example:
        >>> predictions_root(Path(".mlcycle"))   # MLCYCLE_ARTIFACTS_URL=s3://team/ml
        's3://team/ml/predictions'
    """
    explicit = os.environ.get(ENV_URL)
    if explicit:
        return explicit
    artifacts = os.environ.get("MLCYCLE_ARTIFACTS_URL", "")
    if "://" in artifacts and not artifacts.startswith(("file://", "local://")):
        # Team mode: a server on one machine and monitoring on another share the log.
        return f"{artifacts.rstrip('/')}/predictions"
    return str(home / "predictions")


def day_folder(root: str, model: str, day: str) -> str:
    """The folder of one model's log files for one UTC day (``YYYY-MM-DD``).

    Raises :class:`BadInput` for a model name that is not one path segment
    (``../x``): a bundle's name must not write outside the log's root.
    """
    return f"{str(root).rstrip('/')}/{check_model_name(model)}/date={day}"


def new_file_name() -> str:
    """A fresh, unique name for one log file (never appended to, never reused)."""
    return f"{uuid.uuid4().hex}.parquet"


def _fs(root: str) -> tuple[fsspec.AbstractFileSystem, str]:
    from mlcycle.store.remote import filesystem  # a missing s3fs: "install mlcycle[s3]"

    fs, path = filesystem(root)
    return fs, str(path).rstrip("/")


def list_files(root: str, model: str) -> list[str]:
    """Every log file of ``model``, sorted (date partition, then name)."""
    fs, base = _fs(root)
    folder = f"{base}/{check_model_name(model)}"
    try:
        # Servers on other machines add files: an object store client's cached listings
        # (of the day folders too, which invalidating `folder` alone keeps) are stale.
        fs.invalidate_cache()
        return sorted(str(p) for p in fs.glob(f"{folder}/date=*/*.parquet"))
    except Exception as exc:  # each backend raises its own kinds: translated by name
        from mlcycle.store.remote import storage_error

        raise storage_error(root, exc, "list the prediction log at", fs) from None


def read_files(
    root: str, paths: Sequence[str], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read log files into one frame (``columns`` only, when given).

    Raises :class:`BadInput` naming the file when one cannot be read or lacks a
    column asked for. A column of :data:`OPTIONAL_COLUMNS` that an older file
    lacks reads as nulls.
    """
    fs, _ = _fs(root)
    frames = []
    for path in paths:
        try:
            with fs.open(path, "rb") as fh:
                present = set(pq.read_schema(fh).names)
                fh.seek(0)
                wanted = list(columns) if columns else None
                asked = None if wanted is None else [c for c in wanted if c in present]
                if wanted is not None and len(asked or []) != len(wanted):
                    missing = [c for c in wanted if c not in present]
                    if any(c not in OPTIONAL_COLUMNS for c in missing):
                        raise KeyError(f"no column(s) {', '.join(missing)}")
                table = pq.read_table(fh, columns=asked)
            for name, kind in OPTIONAL_COLUMNS.items():
                if name not in present and (wanted is None or name in wanted):
                    table = table.append_column(name, pa.nulls(table.num_rows, kind))
            if wanted is not None:
                table = table.select(wanted)
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            raise BadInput(
                f"prediction log file {path} cannot be read",
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                "move the broken file out of the log folder, then run again",
            ) from None
        frames.append(table.to_pandas())
    if not frames:
        return pd.DataFrame(columns=list(columns or BASE_COLUMNS))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def write_predictions(root: str, model: str, frame: pd.DataFrame) -> list[str]:
    """Write a frame of log rows as one file per ``ts`` date; return the paths.

    Each file is written to a temporary name and renamed, so a reader never
    sees half a file. Used by ``mlcycle monitor replay`` and by tests until a
    service writes the log itself.

    Example:
        >>> write_predictions(root, "flights", scored.assign(ts=..., role="batch", ...))
    """
    missing = [c for c in BASE_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(
            f"prediction log rows lack column(s) {', '.join(missing)}",
            "every log file carries the same base columns",
            f"add them: {', '.join(BASE_COLUMNS)}",
        )
    check_model_name(model)  # before anything is written, even for an empty frame
    if len(frame) == 0:
        return []
    fs, base = _fs(root)
    ts = pd.to_datetime(frame["ts"], utc=True)
    frame = frame.assign(ts=ts.dt.as_unit("us"))
    written = []
    for day, part in frame.groupby(ts.dt.strftime("%Y-%m-%d"), sort=True):
        folder = day_folder(base, model, str(day))
        fs.makedirs(folder, exist_ok=True)
        name = new_file_name()
        tmp = f"{folder}/.{name}.tmp"
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        with fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh)
        fs.mv(tmp, f"{folder}/{name}")
        written.append(f"{folder}/{name}")
    return written
