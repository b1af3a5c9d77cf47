"""The output of a batch chunk: its columns, their types, and the table of one chunk.

Columns: the id column (when there is one), ``prediction`` (the class labels
in their own type, or the value), ``probability`` for a binary model or
``proba_<class>`` per class, ``model_version``, and ``out_of_range`` under the
"flag" policy (appended by :func:`~mlcycle.serve.batch.score.finish_chunk`).
The local job and the Ray engine build the same tables from here.

Example:
    >>> schema = output_schema(runtime, "flight_id", pa.string())
    >>> OutputBuilder(runtime, schema, "flight_id").table(ids, predicted, proba).num_rows
    1000
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from mlcycle.errors import BadInput
from mlcycle.predlog import OUT_OF_RANGE
from mlcycle.serve.model import ModelRuntime


def label_type(rt: ModelRuntime) -> pa.DataType:
    """The Arrow type of the ``prediction`` column.

    Example:
        >>> label_type(runtime)  # a binary classifier with labels False/True
        DataType(bool)
    """
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


def proba_columns(rt: ModelRuntime) -> list[str]:
    """``probability`` (positive class) for binary models, ``proba_<class>`` for multiclass.

    Example:
        >>> proba_columns(runtime)  # binary
        ['probability']
    """
    if not rt.is_classifier or rt.classes is None:
        return []
    if rt.positive_index is not None:
        return ["probability"]
    return [f"proba_{c}" for c in rt.classes]


class OutputBuilder:
    """Builds the output table of one chunk: id, prediction, probabilities, model version."""

    def __init__(self, rt: ModelRuntime, schema: pa.Schema, id_column: str | None) -> None:
        self.rt = rt
        self.schema = schema
        self.id_column = id_column
        kind = schema.field("prediction").type
        self._labels: pa.Array | None = None
        if rt.is_classifier and rt.classes is not None:
            classes = [str(c) for c in rt.classes] if pa.types.is_string(kind) else rt.classes
            self._labels = pa.array(classes, kind)

    def labels(self, predicted: np.ndarray) -> pa.Array:
        """The ``prediction`` column from :meth:`Scorer.submit`'s first result."""
        if self._labels is None:
            return pa.array(predicted, pa.float64())
        return self._labels.take(pa.array(predicted, pa.int64()))

    def table(
        self, ids: pa.ChunkedArray | None, predicted: np.ndarray, proba: np.ndarray | None
    ) -> pa.Table:
        n = len(predicted)
        arrays: list[Any] = []
        if self.id_column:
            assert ids is not None
            arrays.append(_cast_ids(ids, self.schema.field(self.id_column).type, self.id_column))
        arrays.append(self.labels(predicted))
        names = proba_columns(self.rt)
        if names:
            matrix = proba if proba is not None else np.empty((0, len(self.rt.classes or [])))
            if self.rt.positive_index is not None:
                arrays.append(pa.array(matrix[:, self.rt.positive_index], pa.float64()))
            else:
                arrays.extend(pa.array(matrix[:, j], pa.float64()) for j in range(len(names)))
        version = self.rt.version
        arrays.append(
            pa.nulls(n, pa.int64()) if version is None else pa.array(np.full(n, version, np.int64))
        )
        return pa.Table.from_arrays(arrays, schema=self.schema)


def output_schema(
    rt: ModelRuntime, id_column: str | None, id_dtype: pa.DataType | None
) -> pa.Schema:
    """The output file's schema: id, prediction, probabilities, model_version (, out_of_range).

    Example:
        >>> output_schema(runtime, "flight_id", pa.string()).names
        ['flight_id', 'prediction', 'probability', 'model_version']
    """
    fields: list[pa.Field] = []
    if id_column:
        assert id_dtype is not None
        fields.append(pa.field(id_column, id_dtype))
    fields.append(pa.field("prediction", label_type(rt)))
    for name in proba_columns(rt):
        fields.append(pa.field(name, pa.float64()))
    fields.append(pa.field("model_version", pa.int64()))
    if rt.out_of_range == "flag":
        fields.append(pa.field(OUT_OF_RANGE, pa.string()))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise BadInput(
            f"id column '{id_column}' clashes with an output column",
            f"the output has columns {', '.join(names[1:])}",
            "rename the id column in the input",
        )
    return pa.schema(fields)


def _cast_ids(values: pa.ChunkedArray, dtype: pa.DataType, name: str) -> pa.ChunkedArray:
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
