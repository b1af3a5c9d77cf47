"""Adaptive micro-batching: concurrent small requests share one model call.

A model call's cost is mostly fixed (a 1-row and a 100-row call of a
scikit-learn estimator cost about the same), so requests that arrive while a
call runs are queued and then scored together, up to ``max_rows``. A request
arriving at an idle server starts at once: batching only happens under load
and adds no timer. Small calls on ONNX Runtime (tens of microseconds) run on
the event loop; everything else in a worker thread.

Example:
    >>> batcher = MicroBatcher(runtime)
    >>> labels, proba = await batcher.predict(runtime.encode_records(rows))
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from starlette.concurrency import run_in_threadpool

from mlcycle.serve.model import ModelRuntime

Prediction = tuple[list[Any], np.ndarray | None]
MAX_ROWS = 2048
# ONNX Runtime calls up to this many rows run on the event loop (< ~0.5 ms).
INLINE_ROWS = 256


class MicroBatcher:
    """Queue of (encoded matrix or validated frame, future) for one runtime."""

    def __init__(
        self,
        runtime: ModelRuntime,
        max_rows: int = MAX_ROWS,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.max_rows = max_rows
        self.on_batch = on_batch
        self._queue: list[tuple[Any, asyncio.Future[Prediction]]] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def predict(self, item: np.ndarray | pd.DataFrame) -> Prediction:
        """Score one request's rows: an encoded matrix (compiled runtime) or a checked frame."""
        if len(item) >= self.max_rows:
            if self.on_batch:
                self.on_batch(len(item))
            return await run_in_threadpool(self._predict_many, [item])
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # The same app served from a new event loop (e.g. a test client).
            self._loop, self._queue, self._task = loop, [], None
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append((item, future))
        # No await between the drain loop's last queue check and its end, so a
        # task that is not done is certain to see this request.
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take()
            items = [item for item, _ in batch]
            rows = sum(len(item) for item in items)
            if self.on_batch:
                self.on_batch(rows)
            try:
                if self.runtime.onnx is not None and rows <= INLINE_ROWS:
                    labels, proba = self._predict_many(items)
                    await asyncio.sleep(0)  # let the requests that arrived meanwhile queue up
                else:
                    labels, proba = await run_in_threadpool(self._predict_many, items)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for item, future in batch:
                end = start + len(item)
                if not future.done():  # the client may have gone away
                    part = None if proba is None else proba[start:end]
                    future.set_result((labels[start:end], part))
                start = end

    def _take(self) -> list[tuple[Any, asyncio.Future[Prediction]]]:
        taken, rows = 0, 0
        for item, _ in self._queue:
            if taken and rows + len(item) > self.max_rows:
                break
            taken += 1
            rows += len(item)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    def _predict_many(self, items: list[Any]) -> Prediction:
        rt = self.runtime
        if isinstance(items[0], np.ndarray):
            matrix = items[0] if len(items) == 1 else np.concatenate(items)
            return rt.predict_matrix(matrix)
        return rt.predict_arrays(items[0] if len(items) == 1 else concat(items))


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack validated frames; a boolean column is bool in one and 0/1/NaN in another.

    Example:
        >>> concat([rt.validate_records(a), rt.validate_records(b)])
    """
    first = frames[0]
    mixed = [
        name for name in first.columns if len({str(frame[name].dtype) for frame in frames}) > 1
    ]
    if mixed:
        frames = [
            frame.astype({name: np.float64 for name in mixed if frame[name].dtype == bool})
            for frame in frames
        ]
    return pd.concat(frames, ignore_index=True)
