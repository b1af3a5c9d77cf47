"""What the prediction log queues: the model that scored rows, and one request's (or chunk's) rows.

Kept apart from the writer (``predlog.py``) and the table builder
(``logtable.py``), which both need these types.

Example:
    >>> entry = LogEntry(ModelInfo.of(runtime), "champion", rid, now(), records, None,
    ...                  labels, proba, ids_from_request=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """What a log entry needs to know about the model that scored it."""

    name: str
    version: int | None
    task: str
    features: tuple[tuple[str, str], ...]  # (name, schema kind)
    classes: tuple[Any, ...] | None
    positive_index: int | None
    # (feature, column) of the features the compiled plan passes through unchanged
    # into the encoded matrix: the log takes them from there (see EncodedRows).
    matrix_columns: tuple[tuple[str, int], ...] = ()

    @classmethod
    def of(cls, runtime: Any) -> ModelInfo:
        """From a :class:`~mlcycle.serve.runtime.ModelRuntime`."""
        return cls(
            name=runtime.meta.name,
            version=runtime.version,
            task=runtime.meta.task,
            features=tuple((c.name, c.kind) for c in runtime.input_schema.columns),
            classes=None if runtime.classes is None else tuple(runtime.classes),
            positive_index=runtime.positive_index,
            matrix_columns=_passthrough_columns(getattr(runtime, "plan", None)),
        )


def _passthrough_columns(plan: Any) -> tuple[tuple[str, int], ...]:
    if plan is None:
        return ()
    found: list[tuple[str, int]] = []
    j = 0
    for block in plan.outputs:
        name = plan.inputs[block.source].name
        if block.how == "number" and name not in {f for f, _ in found}:
            found.append((name, j))
        j += block.width
    return tuple(found)


@dataclass(slots=True)
class EncodedRows:
    """Clean records with the matrix the compiled path encoded them into.

    The log reads passed-through features (numbers, booleans) from the
    matrix as whole columns and only the others (text) from the records.
    """

    records: list[dict[str, Any]]
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.records)


@dataclass(slots=True)
class RawRecords:
    """A request body whose records took the compiled path, to be parsed again by the writer.

    Keeping a request's parsed records (a list, a dict, a Python object per
    value) alive until the writer runs, and freeing them in the writer's
    thread, cost the event loop ~8-10 µs per single-row request (measured:
    queueing the entries and dropping them unconverted was that much slower
    than not queueing them). The body is one ``bytes`` object; the writer
    re-parses it in bulk (orjson, ~1 µs) with the same functions, so it gets
    the same records. ``protocol`` is ``"predict"`` or ``"infer"``;
    ``runtime`` (long-lived) parses it.
    """

    body: bytes
    runtime: Any
    protocol: str


@dataclass(slots=True)
class LogEntry:
    """The rows of one request (or one batch chunk) and what the model said about them.

    ``inputs`` is a list of records, :class:`EncodedRows`, :class:`RawRecords`, or a mapping
    feature → column values (a list, array or pandas Series; a DataFrame).
    The serving path passes what it already built (the parsed records or the
    validated frame, the label list, the probability array): no copy, no
    conversion; the writer thread does the rest in bulk. With
    ``ids_from_request`` a row without an id of its own is
    logged with row id ``<request_id>:<index in the request>``.
    """

    model: ModelInfo
    role: str
    request_id: str
    ts: datetime
    inputs: Any  # records, EncodedRows, RawRecords, or columns (a mapping or a DataFrame)
    row_ids: Sequence[Any] | None
    labels: Sequence[Any]
    proba: np.ndarray | None
    ids_from_request: bool = False

    @property
    def rows(self) -> int:
        return len(self.labels)
