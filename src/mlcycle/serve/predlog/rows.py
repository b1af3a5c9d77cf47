"""What the prediction log takes: the model that scored rows, and the rows (:class:`LogRows`).

Kept apart from the writer (``writer.py``), the table builder (``table.py``)
and the column buffers (``buffer.py``), which all need these types.

Example:
    >>> rows = LogRows(ModelInfo.of(runtime), "champion", rid, now(), labels, proba,
    ...                records=records, ids_from_request=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from mlcycle.bundle import check_model_name


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
    # features back from there (see LogRows.matrix).
    matrix_layout: tuple[MatrixColumn, ...] = ()
    # Range-checked numeric features, (name, low, high): the log's out_of_range
    # column is computed from the logged values, in the writer thread.
    ranges: tuple[tuple[str, float, float], ...] = ()

    def __post_init__(self) -> None:
        # The name becomes the log's <root>/<model>/ folder: refuse '../x' up front, not
        # in the writer thread where the rows would only be dropped.
        check_model_name(self.name)

    @classmethod
    def of(cls, runtime: Any) -> ModelInfo:
        """From a :class:`~mlcycle.serve.model.ModelRuntime`.

        Example:
            >>> ModelInfo.of(runtime).features[:1]
            (('distance', 'numeric'),)
        """
        return cls(
            name=runtime.meta.name,
            version=runtime.version,
            task=runtime.meta.task,
            features=tuple((c.name, c.kind) for c in runtime.input_schema.columns),
            classes=None if runtime.classes is None else tuple(runtime.classes),
            positive_index=runtime.positive_index,
            matrix_layout=matrix_layout(getattr(runtime, "plan", None)),
            ranges=tuple(
                (name, low, high) for name, (low, high) in getattr(runtime, "ranges", {}).items()
            ),
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
    """Each feature's first block in ``plan`` (a feature can feed several).

    Example:
        >>> matrix_layout(runtime.plan)[0]
        MatrixColumn(feature='distance', how='number', column=0, width=1, categories=())
    """
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


class BodyDecoder(Protocol):
    """Parses request bodies of one protocol back into the records the request path parsed.

    The REST app gives one per model and protocol (``serve/http/parsing.py``);
    the log calls it only for rows the encoded matrix cannot tell.
    """

    def decode(self, body: bytes) -> list[dict[str, Any]]:
        """One body's records."""
        ...

    def decode_all(self, bodies: list[bytes]) -> list[dict[str, Any]]:
        """Every body's records, in order (cheaper than one by one where it can be)."""
        ...


@dataclass(slots=True)
class LogRows:
    """The rows of one request (or batch chunk) and what the model said: the one shape of a
    logged row, built from what the request already decoded, whichever path it took.

    Feature values come from the first of these that is set:

    - ``matrix`` (the compiled path's encoded matrix): numbers and categories are
      read back from it; rows it cannot tell (a null or unknown category) from
      ``records`` when the request kept them, else from ``body`` parsed again by
      ``decoder``. A request with a ``body`` keeps no objects in the log: its
      values are appended to column buffers at once (``buffer.py``);
    - ``frame``: validated columns (a DataFrame or a mapping name → values), as
      the generic path and the batch job built them;
    - ``records``: the parsed records.

    With ``ids_from_request`` a row without an id of its own (``row_ids``) is
    logged with row id ``<request_id>:<index in the request>``.

    Example:
        >>> LogRows(info, "champion", rid, now(), labels, proba, matrix=X, body=body,
        ...         decoder=decoder, ids_from_request=True)
    """

    model: ModelInfo
    role: str
    request_id: str
    ts: float  # seconds since the epoch (time.time()): a float costs the request path least
    labels: Sequence[Any]
    proba: np.ndarray | None
    row_ids: Sequence[Any] | None = None
    ids_from_request: bool = False
    matrix: np.ndarray | None = None
    frame: Any = None  # a DataFrame or a mapping feature → values
    records: list[dict[str, Any]] | None = None
    body: bytes | None = None
    decoder: BodyDecoder | None = None
    # The request's model time in ms (the log's latency_ms, the same on each of its rows);
    # None where not measured (batch chunks).
    latency_ms: float | None = None

    @property
    def rows(self) -> int:
        return len(self.labels)

    def parsed(self) -> list[dict[str, Any]]:
        """The records of these rows: kept ones, else the body parsed again."""
        if self.records is not None:
            return self.records
        assert self.body is not None and self.decoder is not None, "rows without records"
        return self.decoder.decode(self.body)
