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
from typing import Any, NamedTuple

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
    # Where each feature sits in the compiled plan's matrix: the log reads
    # features back from there (see EncodedRows, RawRecords).
    matrix_layout: tuple[MatrixColumn, ...] = ()

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
            matrix_layout=matrix_layout(getattr(runtime, "plan", None)),
        )


class MatrixColumn(NamedTuple):
    """How one feature reads back from the compiled plan's matrix.

    ``how`` is ``number`` (the value itself, NaN for null), ``ordinal`` (the
    category's code in ``column``, NaN for null *or* unknown) or ``onehot``
    (``width`` columns from ``column``; none set means unknown). ``categories``
    holds the category text by code; ``None`` at the code of the missing
    category, if the encoder fitted one.
    """

    feature: str
    how: str
    column: int
    width: int = 1
    categories: tuple[str | None, ...] = ()


def matrix_layout(plan: Any) -> tuple[MatrixColumn, ...]:
    """Each feature's first block in ``plan`` (a feature can feed several)."""
    if plan is None:
        return ()
    found: dict[str, MatrixColumn] = {}
    j = 0
    for block in plan.outputs:
        name = plan.inputs[block.source].name
        if name not in found:
            categories: list[str | None] = []
            if block.how != "number":
                size = block.width if block.how == "onehot" else len(block.codes)
                categories = [None] * max(size, max(block.codes.values(), default=-1) + 1)
                for text, code in block.codes.items():
                    categories[code] = text
            found[name] = MatrixColumn(name, block.how, j, block.width, tuple(categories))
        j += block.width
    return tuple(found.values())


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
    """A request whose records took the compiled path: its body and its encoded matrix.

    Keeping a request's parsed records (a list, a dict, a Python object per
    value) alive until the writer runs, and freeing them in the writer's
    thread, cost the event loop ~8-10 µs per single-row request (measured:
    queueing the entries and dropping them unconverted was that much slower
    than not queueing them). The body and the matrix are one object each.
    The writer reads the features back from the matrix (numbers as they
    are, categories through their codes) without parsing anything; only
    rows the matrix cannot tell (a null or unknown category, a feature the
    model does not use) are parsed again from the body with the same
    functions, so they get the same records. ``protocol`` is ``"predict"``
    or ``"infer"``; ``runtime`` (long-lived) parses it.
    """

    body: bytes
    runtime: Any
    protocol: str
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.matrix)


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
    ts: float  # seconds since the epoch (time.time()): a float costs the request path least
    inputs: Any  # records, EncodedRows, RawRecords, or columns (a mapping or a DataFrame)
    row_ids: Sequence[Any] | None
    labels: Sequence[Any]
    proba: np.ndarray | None
    ids_from_request: bool = False

    @property
    def rows(self) -> int:
        return len(self.labels)
