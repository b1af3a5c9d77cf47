"""Logged feature values read back from the compiled plan's matrix, bodies parsed only when needed.

A request that took the compiled path was encoded into the estimator's
float matrix (``serve/model/fastpath.py``). The prediction log needs the
request's feature values, and almost all of them are in that matrix:
numbers and booleans as they are, categories as their code. Reading them
back is a few vectorised calls over one matrix; parsing the request bodies
again (orjson, then Arrow's conversion of a dict per row) cost about 2 µs
per row, most of the log's cost. A body is parsed again only for rows the
matrix cannot tell (a null or unknown category: a NaN code, an empty
one-hot block) and for features the matrix does not hold.

Example:
    >>> source = Records(counts, lambda i: decoder.decode(bodies[i]))
    >>> columns = matrix_features(matrix, info, feature_schema(info), source)
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.serve.predlog.rows import ModelInfo

_KIND_TYPES = {"numeric": pa.float64(), "boolean": pa.bool_()}


def arrow_type(kind: str) -> pa.DataType:
    """The log's column type for a schema kind (text for everything not a number or a flag).

    Example:
        >>> arrow_type("numeric"), arrow_type("categorical")
        (DataType(double), DataType(string))
    """
    return _KIND_TYPES.get(kind, pa.string())


def feature_schema(info: ModelInfo) -> pa.Schema:
    """The log's feature columns of a model, as an Arrow schema.

    Example:
        >>> feature_schema(info).names[:2]
        ['distance', 'carrier']
    """
    return pa.schema([(name, arrow_type(kind)) for name, kind in info.features])


class Records:
    """The records behind a run of requests, parsed lazily, request by request.

    ``counts`` holds each request's row count; ``parse(i)`` returns request
    ``i``'s records; ``parse_all()`` (optional) all of them at once, when
    that is cheaper than one request at a time.
    """

    def __init__(
        self,
        counts: np.ndarray,
        parse: Callable[[int], list[dict[str, Any]]],
        parse_all: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.counts = counts
        self.parse = parse
        self.parse_all = parse_all

    def all(self) -> list[dict[str, Any]]:
        """Every request's records, in order."""
        if self.parse_all is not None:
            return self.parse_all()
        return list(chain.from_iterable(map(self.parse, range(len(self.counts)))))

    def at(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """The records of the given rows (sorted positions over all rows); only the requests
        holding one are parsed."""
        starts = np.cumsum(self.counts) - self.counts
        owners = np.searchsorted(starts, rows, side="right") - 1
        parsed: dict[int, list[dict[str, Any]]] = {}
        picked = []
        for row, owner in zip(rows.tolist(), owners.tolist(), strict=True):
            if owner not in parsed:
                parsed[owner] = self.parse(owner)
            picked.append(parsed[owner][row - int(starts[owner])])
        return picked


def matrix_features(
    matrix: np.ndarray, info: ModelInfo, schema: pa.Schema, records: Records
) -> dict[str, pa.Array]:
    """One array per feature in ``schema``: from the matrix where it can tell, else records.

    Example:
        >>> matrix_features(matrix, info, feature_schema(info), records)["carrier"]
    """
    kinds = dict(info.features)
    arrays: dict[str, pa.Array] = {}
    unsure = np.zeros(len(matrix), dtype=bool)  # rows whose category the matrix cannot tell
    for col in info.matrix_layout:
        if col.feature not in kinds:
            continue
        if col.how == "number":
            values = pa.array(matrix[:, col.column], pa.float64(), from_pandas=True)  # NaN → null
            arrays[col.feature] = (
                values if kinds[col.feature] == "numeric" else values.cast(pa.bool_())
            )
            continue
        if col.how == "ordinal":
            codes = matrix[:, col.column]
            blank = np.isnan(codes)
            codes = np.where(blank, 0, codes)
        else:
            block = matrix[:, col.column : col.column + col.width]
            codes = block.argmax(axis=1)
            blank = ~block.any(axis=1)
        unsure |= blank
        categories = pa.array(col.categories, pa.string())
        arrays[col.feature] = categories.take(pa.array(codes.astype(np.int32), mask=blank))
    rest = pa.schema([f for f in schema if f.name not in arrays])
    every: list[dict[str, Any]] = []
    if len(rest):
        every = records.all()
        table = records_table(every, info, rest)
        arrays.update(zip(table.column_names, table.columns, strict=True))
    if unsure.any():
        rows = np.flatnonzero(unsure)
        picked = [every[i] for i in rows.tolist()] if every else records.at(rows)
        mask = pa.array(unsure)
        for col in info.matrix_layout:
            if col.how != "number" and col.feature in kinds:
                given = from_values([r.get(col.feature) for r in picked], kinds[col.feature])
                arrays[col.feature] = pc.replace_with_mask(arrays[col.feature], mask, given)
    return {f.name: arrays[f.name] for f in schema}


def records_table(records: list[Any], info: ModelInfo, schema: pa.Schema) -> pa.Table:
    """Records as columns of ``schema``: one C++ pass for clean records, else value by value.

    Example:
        >>> records_table([{"distance": 700.0}], info, schema).num_rows
        1
    """
    try:
        # Records on the compiled path are clean (numbers, booleans, text): one C++ pass.
        return pa.Table.from_pylist(records, schema=schema)
    except (pa.ArrowException, TypeError, ValueError):
        kinds = dict(info.features)
        columns = {f.name: [r.get(f.name) for r in records] for f in schema}
        arrays = [from_values(columns[f.name], kinds[f.name]) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)


def from_values(values: list[Any], kind: str) -> pa.Array:
    """Python values of one feature → its log column, converting each value (the slow path).

    Example:
        >>> from_values([1, None], "numeric").to_pylist()
        [1.0, None]
    """
    if kind == "numeric":
        return pa.array([None if v is None or v != v else float(v) for v in values], pa.float64())
    if kind == "boolean":
        return pa.array([None if v is None or v != v else bool(v) for v in values], pa.bool_())
    if kind == "datetime":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.array([None if v is None or v != v else str(v) for v in values], pa.string())
