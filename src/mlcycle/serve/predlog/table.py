"""Queued :class:`LogRows` → one Arrow table in the log's schema, in bulk.

This runs in the log's writer thread, which shares the GIL with the event
loop serving requests: every millisecond it spends in Python is a millisecond
a request waits. So nothing here loops over rows in Python. Values repeated
per request (request id, time, version, role) are built once per request and
spread with ``take``; feature columns come from an encoded matrix
(``matrix.py``), from records in one C++ call
(:meth:`pyarrow.Table.from_pylist`) or from a frame's arrays; labels are
mapped to text through the class list; synthetic row ids are joined by Arrow
compute. :func:`assemble` builds the columns every source shares; the
compiled path's column buffers (``buffer.py``) use it too.

Example:
    >>> table = to_table(entries)  # entries of one model, in queue order
    >>> table.column_names[:5]
    ['request_id', 'ts', 'model', 'model_version', 'role']
"""

from __future__ import annotations

import itertools
import operator
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.predlog import LATENCY_MS, OUT_OF_RANGE, out_of_range_column
from mlcycle.serve.predlog.matrix import (
    Records,
    arrow_type,
    feature_schema,
    from_values,
    matrix_features,
    records_table,
)
from mlcycle.serve.predlog.rows import LogRows, ModelInfo

_LABELS = attrgetter("labels")
_PROBA = attrgetter("proba")
_RECORDS = attrgetter("records")
_TS = attrgetter("ts")
_LATENCY = attrgetter("latency_ms")


def to_table(entries: list[LogRows]) -> pa.Table:
    """Entries of one model (same features and classes) as one table in the log's schema.

    Example:
        >>> to_table([LogRows(info, "champion", "r1", now(), [True], proba, records=[row])])
    """
    # Per-entry fields are read with attrgetter/map: C loops, no Python frame per entry.
    info = entries[0].model
    labels = list(map(_LABELS, entries))
    counts = np.fromiter(map(len, labels), dtype=np.int64, count=len(entries))
    probas = list(map(_PROBA, entries))
    proba = (
        np.concatenate(probas)
        if info.classes is not None and not any(map(operator.is_, probas, repeat(None)))
        else None
    )
    given = None
    if any(map(attrgetter("row_ids"), entries)):
        given = list(chain.from_iterable(e.row_ids or [None] * e.rows for e in entries))
    flags = map(attrgetter("ids_from_request"), entries)
    return assemble(
        info,
        counts,
        request_ids=pa.array(list(map(attrgetter("request_id"), entries)), pa.string()),
        seconds=np.fromiter(map(_TS, entries), dtype=np.float64, count=len(entries)),
        versions=pa.array(list(map(attrgetter("model.version"), entries)), pa.int64()),
        roles=pa.array(list(map(attrgetter("role"), entries)), pa.string()),
        features=_features(entries, info),
        given_ids=given,
        numbered=np.fromiter(flags, dtype=bool, count=len(entries)),
        labels=list(chain.from_iterable(labels)),
        proba=proba,
        # None (not measured) becomes NaN, a null in the log.
        latency_ms=np.array(list(map(_LATENCY, entries)), dtype=np.float64),
    )


def assemble(
    info: ModelInfo,
    counts: np.ndarray,
    *,
    request_ids: pa.Array,
    seconds: np.ndarray,
    versions: pa.Array,
    roles: pa.Array,
    features: dict[str, pa.Array],
    given_ids: list[Any] | None,
    numbered: np.ndarray,
    labels: list[Any],
    proba: np.ndarray | None,
    latency_ms: np.ndarray | None = None,
) -> pa.Table:
    """The log's table from per-request values (``counts`` rows each, spread over their
    rows) and per-row ones (features, given row ids, labels, probabilities).

    ``latency_ms`` is per request (NaN where not measured: null in the log).

    ``numbered`` marks the requests whose rows without an id of their own are
    logged as ``<request id>:<index>``.

    Example:
        >>> assemble(info, counts, request_ids=..., seconds=..., versions=..., roles=...,
        ...          features=..., given_ids=None, numbered=..., labels=..., proba=None)
    """
    n = int(counts.sum())
    owner = None if n == len(counts) else np.repeat(np.arange(len(counts)), counts)

    def spread(values: pa.Array) -> pa.Array:
        return values if owner is None else values.take(owner)

    micros = np.rint(seconds * 1e6).astype(np.int64)
    arrays: dict[str, pa.Array] = {
        "request_id": spread(request_ids),
        "ts": spread(pa.array(micros, pa.timestamp("us", tz="UTC"))),
        "model": pa.repeat(pa.scalar(info.name, pa.string()), n),
        "model_version": spread(versions),
        "role": spread(roles),
    }
    arrays.update(features)
    arrays["row_id"] = _row_ids(given_ids, counts, numbered, arrays["request_id"])
    arrays["prediction"] = _predictions(labels, info)
    if proba is not None:
        proba = proba.astype(np.float64, copy=False)
    if info.task == "binary" and proba is not None and info.positive_index is not None:
        arrays["probability"] = pa.array(proba[:, info.positive_index], pa.float64())
    else:
        arrays["probability"] = pa.nulls(n, pa.float64())
    if info.task == "multiclass" and info.classes is not None:
        for j, label in enumerate(info.classes):
            column = proba[:, j] if proba is not None else np.full(n, np.nan)
            arrays[f"proba_{label}"] = pa.array(column, pa.float64())
    arrays[OUT_OF_RANGE] = _out_of_range(info, features, n)
    if latency_ms is None:
        arrays[LATENCY_MS] = pa.nulls(n, pa.float64())
    else:
        arrays[LATENCY_MS] = spread(pa.array(latency_ms, pa.float64(), from_pandas=True))
    return pa.table(arrays)


def _out_of_range(info: ModelInfo, features: dict[str, pa.Array], n: int) -> pa.Array:
    """The log's ``out_of_range`` column, from the logged values: a few vectorised compares
    per checked feature (a null is never outside)."""
    masks: dict[str, np.ndarray] = {}
    for name, low, high in info.ranges:
        column = features.get(name)
        if column is None:
            continue
        values = column.to_numpy(zero_copy_only=False)  # nulls become NaN
        mask = (values < low) | (values > high)
        if mask.any():
            masks[name] = mask
    return out_of_range_column(masks, n)


# --- features -----------------------------------------------------------------------------


def _source(rows: LogRows) -> str:
    """Where a run's feature values come from (see :class:`LogRows`): the first field set."""
    if rows.matrix is not None:
        return "matrix"
    return "frame" if rows.frame is not None else "records"


def _features(entries: list[LogRows], info: ModelInfo) -> dict[str, pa.Array]:
    """One array per feature, built run by run: consecutive entries of one source share a call."""
    schema = feature_schema(info)
    sources = set(map(_source, entries))
    if len(sources) == 1:  # the usual case: one source
        runs: Any = [(sources.pop(), entries)]
    else:
        runs = itertools.groupby(entries, key=_source)
    parts: list[pa.Table] = []
    for source, run in runs:
        group = list(run)
        if source == "matrix":
            parts.append(_from_matrix(group, info, schema))
        elif source == "records":
            records = list(chain.from_iterable(map(_RECORDS, group)))
            parts.append(records_table(records, info, schema))
        else:
            for e in group:
                parts.append(_from_columns(e.frame, e.rows, info, schema))
    table = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
    return {name: table.column(name).combine_chunks() for name, _ in info.features}


def _from_matrix(group: list[LogRows], info: ModelInfo, schema: pa.Schema) -> pa.Table:
    """Entries carrying an encoded matrix: features read back from it (``matrix.py``)."""
    matrix = np.concatenate([e.matrix for e in group if e.matrix is not None])
    counts = np.fromiter(map(attrgetter("rows"), group), dtype=np.int64, count=len(group))
    parse_all = None
    decoders = {id(e.decoder) for e in group}
    if all(e.records is None and e.body is not None for e in group) and len(decoders) == 1:
        bodies = [e.body for e in group if e.body is not None]
        decoder = group[0].decoder
        assert decoder is not None
        parse_all = lambda: decoder.decode_all(bodies)  # noqa: E731
    source = Records(counts, lambda i: group[i].parsed(), parse_all)
    return pa.table(matrix_features(matrix, info, schema, source), schema=schema)


def _from_columns(frame: Any, rows: int, info: ModelInfo, schema: pa.Schema) -> pa.Table:
    """A validated frame or a mapping name → values (the generic path and batch chunks)."""
    arrays = [_column_array(frame, name, kind, rows) for name, kind in info.features]
    return pa.Table.from_arrays(arrays, schema=schema)


def _column_array(frame: Any, name: str, kind: str, rows: int) -> pa.Array:
    values = frame.get(name)  # a mapping or a DataFrame
    if values is None:
        return pa.nulls(rows, arrow_type(kind))
    if hasattr(values, "to_numpy"):
        if kind != "datetime":
            try:
                return _from_series(values, kind)
            except (pa.ArrowException, TypeError, ValueError):
                pass
        values = values.astype(object).where(values.notna(), None).tolist()
    return from_values(list(values), kind)


def _from_series(series: Any, kind: str) -> pa.Array:
    """A validated pandas column, converted without a Python loop."""
    if kind == "numeric":
        return pa.array(series.to_numpy(dtype=np.float64, na_value=np.nan), from_pandas=True)
    if kind == "boolean":
        if series.dtype == bool:
            return pa.array(series.to_numpy(dtype=bool))
        # Boolean with a null: float 0/1/NaN in a validated frame.
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return pa.array(floats, from_pandas=True).cast(pa.bool_())
    return pa.array(series, type=pa.string(), from_pandas=True)


# --- row ids and predictions ----------------------------------------------------------------


def _row_ids(
    given: list[Any] | None, counts: np.ndarray, numbered: np.ndarray, request_ids: pa.Array
) -> pa.Array:
    """The input's id when it carries one, else ``<request id>:<index>`` for requests."""
    n = int(counts.sum())
    if given is not None:
        try:
            ids = pa.array(given, pa.string())  # ids are usually text already: one C pass
        except (pa.ArrowException, TypeError, ValueError):
            ids = pa.array([None if v is None else str(v) for v in given], pa.string())
    else:
        ids = pa.nulls(n, pa.string())
    if not numbered.any():
        return ids
    starts = np.cumsum(counts) - counts
    index = np.arange(n) - np.repeat(starts, counts)
    synthetic = pc.binary_join_element_wise(request_ids, pa.array(index).cast(pa.string()), ":")
    if given is None and numbered.all():
        return synthetic  # the REST service's usual case
    mask = pa.array(np.repeat(numbered, counts))
    return pc.coalesce(ids, pc.if_else(mask, synthetic, pa.nulls(n, pa.string())))


def _predictions(labels: list[Any], info: ModelInfo) -> pa.Array:
    if info.task == "regression":
        return pa.array(labels, pa.float64())
    if info.classes is not None:
        try:
            # Labels are class values: map them to their text through the class list.
            classes = pa.array(list(info.classes))
            position = pc.index_in(pa.array(labels, classes.type), value_set=classes)
            if position.null_count == 0:
                return pa.array([str(c) for c in info.classes], pa.string()).take(position)
        except (pa.ArrowException, TypeError, ValueError):
            pass
    return pa.array([str(v) for v in labels], pa.string())
