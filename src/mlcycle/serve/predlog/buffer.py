"""The compiled path's prediction-log buffer: a request's log row as a few appends to columns.

Measured on the benchmark machine (2 workers, 2 shared cores), the cost of
the log was not the request path but the writer thread reaching back, a
quarter second later, into every request's objects (an entry, its matrix
and probability arrays, the label list), long evicted from the CPU caches,
and freeing them from another thread: ~3 µs of CPU per row against ~0.7 µs
for the same conversion on warm data. So a request that took the compiled
path keeps no objects of its own in the log: while its values are still in
cache, it appends the matrix and probabilities as bytes, the labels into
one list, the time into a ``array('d')``. The writer joins each column in
one call (``b"".join``, ``np.frombuffer``) and reads the features back from
the matrix (``matrix.py``); the request body is kept only to be parsed (by
the request's :class:`~mlcycle.serve.predlog.rows.BodyDecoder`) for rows the
matrix cannot tell.

Not thread-safe by itself: :class:`~mlcycle.serve.predlog.PredictionLog`
calls :meth:`ColumnBuffer.add` under its lock and swaps whole buffers out
for the writer.

Example:
    >>> buffer = ColumnBuffer(info, "champion", decoder)
    >>> buffer.add(rows, rows.body)   # rows: LogRows with matrix, body and decoder set
    >>> table = buffer.to_table()
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import pyarrow as pa

from mlcycle.serve.predlog.matrix import Records, feature_schema, matrix_features
from mlcycle.serve.predlog.rows import BodyDecoder, LogRows, ModelInfo
from mlcycle.serve.predlog.table import assemble

_NAN = float("nan")


class ColumnBuffer:
    """Logged rows of one model, role and body decoder that took the compiled path, as columns."""

    __slots__ = (
        "bodies",
        "counts",
        "decoder",
        "given_ids",
        "info",
        "labels",
        "latencies",
        "matrices",
        "numbered",
        "proba_dtype",
        "probas",
        "request_ids",
        "role",
        "rows",
        "seconds",
    )

    def __init__(self, info: ModelInfo, role: str, decoder: BodyDecoder) -> None:
        self.info = info
        self.role = role
        self.decoder = decoder
        self.request_ids: list[str] = []
        self.seconds = array("d")
        self.latencies = array("d")
        self.counts = array("q")
        self.numbered = array("b")
        self.matrices: list[bytes] = []
        self.probas: list[bytes] = []
        self.proba_dtype: np.dtype[Any] | None = None
        self.labels: list[Any] = []
        self.given_ids: list[Any] | None = None  # per row, once a request carried ids
        self.bodies: list[bytes] = []
        self.rows = 0

    def add(self, rows: LogRows, body: bytes) -> None:
        """Append one request's rows (about half a microsecond); ``rows`` is not kept.

        ``body`` is ``rows.body``; the caller checked it and ``rows.matrix`` are set.
        """
        labels, proba, given_ids, matrix = rows.labels, rows.proba, rows.row_ids, rows.matrix
        assert matrix is not None
        n = len(labels)
        self.request_ids.append(rows.request_id)
        self.seconds.append(rows.ts)
        latency = rows.latency_ms
        self.latencies.append(_NAN if latency is None else latency)
        self.counts.append(n)
        self.numbered.append(rows.ids_from_request)
        self.matrices.append(matrix.tobytes())
        if proba is not None:
            if self.proba_dtype is None:
                self.proba_dtype = proba.dtype
            elif proba.dtype != self.proba_dtype:
                proba = proba.astype(self.proba_dtype)
            self.probas.append(proba.tobytes())
        self.labels += labels
        if given_ids is not None and self.given_ids is None:
            self.given_ids = [None] * self.rows
        if self.given_ids is not None:
            self.given_ids += given_ids if given_ids is not None else [None] * n
        self.bodies.append(body)
        self.rows += n

    def to_table(self) -> pa.Table:
        """The buffered rows in the log's schema."""
        info = self.info
        counts = np.frombuffer(self.counts, dtype=np.int64)
        matrix = np.frombuffer(b"".join(self.matrices), dtype=np.float64).reshape(self.rows, -1)
        proba = None
        if self.probas and len(self.probas) == len(self.counts):
            joined = b"".join(self.probas)
            proba = np.frombuffer(joined, dtype=self.proba_dtype).reshape(self.rows, -1)
        bodies, decoder = self.bodies, self.decoder
        source = Records(
            counts, lambda i: decoder.decode(bodies[i]), lambda: decoder.decode_all(bodies)
        )
        features = matrix_features(matrix, info, feature_schema(info), source)
        requests = len(self.counts)
        return assemble(
            info,
            counts,
            request_ids=pa.array(self.request_ids, pa.string()),
            seconds=np.frombuffer(self.seconds, dtype=np.float64),
            versions=pa.repeat(pa.scalar(info.version, pa.int64()), requests),
            roles=pa.repeat(pa.scalar(self.role, pa.string()), requests),
            features=features,
            given_ids=self.given_ids,
            numbered=np.frombuffer(self.numbered, dtype=np.int8).astype(bool),
            labels=self.labels,
            proba=proba,
            latency_ms=np.frombuffer(self.latencies, dtype=np.float64),
        )
