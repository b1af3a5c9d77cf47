"""Batch scoring: checked rows → the estimator's matrix → labels and probabilities, in parallel.

Three costs dominate a batch chunk, and each is handled here:

- encoding: :meth:`Plan.encode_frame` maps categories to the fitted codes with
  one Arrow hash lookup per column (:func:`~mlcycle.serve.model.category_codes`),
  not per-row Python;
- scoring: a tree ensemble the registry compiled to native code
  (``<bundle>/native``, see ``serve/model/native_model.py``) scores first:
  2.7× ONNX Runtime's speed on the flights model, and scikit-learn's own
  float64 comparisons. Else ONNX Runtime, whose own thread pool scales poorly
  on tree ensembles (2 threads ran *slower* than 1 on the flights model). Both
  cut a chunk into one slice per core, each scored on a worker thread (both
  release the GIL): about 1.9× on 2 cores. The scikit-learn engines run as
  one task (their OpenMP already uses every core);
- labels: the most probable class by ``argmax`` over the probabilities (a
  binary bundle with a decision threshold: positive when ``P(positive) ≥
  threshold``, see ``ModelRuntime.class_indices``), mapped to the classes with
  an Arrow ``take`` (``output.py``, which builds a chunk's output table): no
  Python list per row.

Scoring is asynchronous (:meth:`Scorer.submit` returns at once), so the
caller prepares the next chunk while this one is scored.

Example:
    >>> scorer = Scorer(runtime)
    >>> pending = scorer.submit(check.frame)
    >>> predicted, proba = pending.result()   # class indices (or values), probabilities
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput
from mlcycle.predlog import OUT_OF_RANGE, out_of_range_column
from mlcycle.serve.batch.output import OutputBuilder
from mlcycle.serve.model import ModelRuntime, NativeModel, RowCheck, outside_masks

logger = logging.getLogger("mlcycle.serve")

# Below this many rows per slice, splitting a chunk costs more than it saves.
MIN_SLICE_ROWS = 4096
# With engine "auto", batch scores through ONNX only when the export agreed with
# scikit-learn this closely at load: batch outputs are kept and compared, so they
# are held to a tighter bound than the REST service's ONNX_TOLERANCE.
BATCH_ONNX_TOLERANCE = 1e-6
# "ray" scores on the actors of a Ray cluster (``ray_engine.py``), each as "auto".
ENGINES = ("auto", "native", "onnx", "sklearn", "ray")


class Scorer:
    """Scores checked frames on worker threads with the fastest engine the runtime trusts.

    ``workers`` defaults to the number of usable cores. Use it as a context
    manager (or call :meth:`close`) to stop the threads.
    """

    def __init__(
        self, runtime: ModelRuntime, workers: int | None = None, engine: str = "auto"
    ) -> None:
        self.runtime = runtime
        self._native = native_model(runtime, engine)
        self.use_onnx = self._native is None and use_onnx(runtime, engine)
        self.workers = max(1, workers or _cores())
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="mlcycle-batch-score")
        # scikit-learn's OpenMP already uses every core: two chunks at once would
        # oversubscribe them (OpenMP threads spin), so its chunks queue one by one.
        self._serial = ThreadPoolExecutor(1, thread_name_prefix="mlcycle-batch-sklearn")
        self._session: Any = _one_thread_session(runtime) if self.use_onnx else None
        self._input = self._session.get_inputs()[0].name if self._session is not None else ""
        self._order: np.ndarray | None = None
        if runtime.is_classifier and runtime.classes is not None:
            # Estimator column order → meta.classes order, exactly as the runtime maps it.
            self._order = runtime.order

    @property
    def engine(self) -> str:
        """``native`` or ``onnxruntime`` (sliced over the cores), or the scikit-learn engine."""
        if self._native is not None:
            return "native"
        return "onnxruntime" if self._session is not None else self.runtime.sklearn_engine

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._serial.shutdown(wait=True, cancel_futures=True)

    def submit(self, frame: pd.DataFrame) -> Future[tuple[np.ndarray, np.ndarray | None]]:
        """Start scoring ``frame`` (valid rows from ``check_rows``).

        The future gives (class index per row in ``runtime.classes`` order, or
        the predicted values for regression; probabilities in the same class
        order, or ``None``).
        """
        rt = self.runtime
        if self._native is not None and rt.plan is not None:
            matrix = rt.plan.encode_frame(frame)
            cuts = self._cuts(len(matrix))
            native = self._native
            parts = [self._pool.submit(native.predict, matrix[a:b]) for a, b in pairwise(cuts)]
            return _gather(parts, self._from_native)
        if self._session is not None and rt.plan is not None:
            matrix = np.ascontiguousarray(rt.plan.encode_frame(frame), dtype=np.float32)
            cuts = self._cuts(len(matrix))
            parts = [self._pool.submit(self._run_onnx, matrix[a:b]) for a, b in pairwise(cuts)]
            return _gather(parts, self._from_raw)
        if rt.plan is not None:
            matrix = rt.plan.encode_frame(frame)
            return self._serial.submit(
                lambda: self._from_runtime(rt.predict_matrix(matrix, onnx=False))
            )
        return self._serial.submit(lambda: self._from_runtime(rt.predict_arrays(frame)))

    def _cuts(self, rows: int) -> list[int]:
        slices = max(1, min(self.workers, rows // MIN_SLICE_ROWS))
        return [rows * i // slices for i in range(slices + 1)]

    def _run_onnx(self, matrix: np.ndarray) -> np.ndarray:
        outputs = self._session.run(None, {self._input: matrix})
        if self.runtime.is_classifier:
            return np.asarray(outputs[-1], dtype=np.float64)
        return np.asarray(outputs[0], dtype=np.float64).reshape(-1)

    def _from_raw(self, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        raw = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if self._order is None:
            return raw, None
        proba = raw[:, self._order]
        return self.runtime.class_indices(proba), proba

    def _from_native(self, parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        scores = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if not self.runtime.is_classifier:
            return scores, None
        return self.runtime.class_indices(scores), scores

    def _from_runtime(
        self, result: tuple[list[Any], np.ndarray | None]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        labels, proba = result
        if proba is None:
            return np.asarray(labels, dtype=np.float64), None
        # The runtime's labels as class indices, chosen by the same rule
        # (argmax, or the bundle's decision threshold).
        return self.runtime.class_indices(proba), proba


def _gather(
    parts: list[Future[np.ndarray]], finish: Callable[[list[np.ndarray]], Any]
) -> Future[Any]:
    """A future resolved with ``finish(results)`` once every part has finished."""
    done: Future[Any] = Future()
    lock = threading.Lock()
    remaining = [len(parts)]

    def one_finished(_: Future[np.ndarray]) -> None:
        # Callbacks run on whichever worker finished; the lock keeps the count exact.
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if not last:
            return
        try:
            done.set_result(finish([p.result() for p in parts]))
        except BaseException as exc:
            done.set_exception(exc)

    for part in parts:
        part.add_done_callback(one_finished)
    return done


# --- one chunk, start to finish: shared by the local job and the Ray engine ---------------


@dataclass
class PendingChunk:
    """One chunk between checking and writing: its input rows, check and pending scores."""

    original: pa.Table
    check: RowCheck
    scores: Future[tuple[np.ndarray, np.ndarray | None]] | None


@dataclass
class ScoredChunk:
    """One chunk's output rows, its rejects (input columns + ``reason``) and counts.

    ``frame`` (the checked feature rows), ``proba`` and ``ids`` feed the
    prediction log; a chunk scored on a Ray actor brings them back only when
    the job logs.
    """

    table: pa.Table
    rejects: pa.Table | None
    rows: int
    rejected: int
    out_of_range: dict[str, int] = field(default_factory=dict)
    frame: pd.DataFrame | None = None
    proba: np.ndarray | None = None
    ids: pa.ChunkedArray | None = None


def submit_chunk(
    rt: ModelRuntime, scorer: Scorer, original: pa.Table, frame: pd.DataFrame, *, from_text: bool
) -> PendingChunk:
    """Check a chunk against the contract and start scoring its valid rows.

    Example:
        >>> pending = submit_chunk(runtime, scorer, table, table.to_pandas(), from_text=False)
    """
    check = rt.check_rows(frame, from_text=from_text)
    scores = scorer.submit(check.frame) if len(check.frame) else None
    return PendingChunk(original, check, scores)


def finish_chunk(chunk: PendingChunk, builder: OutputBuilder) -> ScoredChunk:
    """Wait for a chunk's scores; build its output table and its rejects table.

    The output has the builder's columns, plus ``out_of_range`` under the
    bundle's "flag" policy; rejected rows keep their input columns and gain a
    ``reason``.

    Example:
        >>> done = finish_chunk(submit_chunk(runtime, scorer, table, frame, from_text=False), b)
        >>> done.table.num_rows + done.rejected == done.rows
        True
    """
    rt, check, original = builder.rt, chunk.check, chunk.original
    n_bad = int(check.rejected.sum())
    kept = original.filter(pa.array(~check.rejected)) if n_bad else original
    if chunk.scores is not None:
        predicted, proba = chunk.scores.result()
    else:
        predicted, proba = np.empty(0, dtype=np.intp), None
    ids = kept.column(builder.id_column) if builder.id_column else None
    table = builder.table(ids, predicted, proba)
    counts: dict[str, int] = {}
    if rt.out_of_range == "flag":
        masks = outside_masks(check.frame, rt.ranges)
        counts = {name: int(mask.sum()) for name, mask in masks.items()}
        table = table.append_column(OUT_OF_RANGE, out_of_range_column(masks, len(check.frame)))
    rejects = None
    if n_bad:
        rejects = original.filter(pa.array(check.rejected))
        rejects = rejects.append_column("reason", pa.array(check.reasons, pa.string()))
    return ScoredChunk(
        table, rejects, int(check.rejected.size), n_bad, counts, check.frame, proba, ids
    )


def check_engine(runtime: ModelRuntime, engine: str) -> None:
    """Refuse an unknown ``engine``, and ``onnx`` for a model without a usable export.

    Example:
        >>> check_engine(runtime, "sklearn")  # raises BadInput for an unknown engine
    """
    if engine not in ENGINES:
        raise BadInput(
            f"unknown engine '{engine}'",
            f"batch scoring runs on one of: {', '.join(ENGINES)}",
            "pass --engine auto (the default), native, onnx, sklearn or ray",
        )
    if engine == "native" and native_model(runtime, engine) is None:
        raise BadInput(
            "--engine native: this model has no usable native library",
            "the registry compiles tree ensembles when a model is registered with "
            "mlcycle[native] installed and a C compiler on PATH; a library is used only on "
            "the platform it was compiled for and after it re-scores its check rows "
            "(the log says which failed)",
            "score with --engine auto, or re-register the model where it can be compiled",
        )
    if engine == "onnx" and runtime.onnx is None:
        raise BadInput(
            "--engine onnx: this model has no usable ONNX export",
            "the bundle carries no export, or it failed its check when the model was loaded "
            "(the log says which)",
            "score with --engine auto or sklearn, or export it: mlcycle models export MODEL",
        )


def use_onnx(runtime: ModelRuntime, engine: str) -> bool:
    """Whether batch scoring goes through the ONNX export, for ``engine`` auto, onnx or sklearn.

    ``auto`` takes ONNX only when it agreed with scikit-learn within
    :data:`BATCH_ONNX_TOLERANCE` at load; ``onnx`` takes any export that
    passed the load check, and is an error without one.

    Example:
        >>> use_onnx(runtime, "auto")
        True
    """
    check_engine(runtime, engine)
    if engine in ("sklearn", "native"):
        return False
    if engine == "ray":  # each Ray actor scores as "auto" does
        engine = "auto"
    if engine == "onnx":
        return True
    diff = runtime.onnx_max_diff
    if runtime.onnx is not None and (diff is None or diff > BATCH_ONNX_TOLERANCE):
        logger.info(
            "batch: the ONNX export differs from scikit-learn by %.3g (> %g); using scikit-learn",
            diff if diff is not None else float("nan"),
            BATCH_ONNX_TOLERANCE,
        )
    return runtime.onnx is not None and diff is not None and diff <= BATCH_ONNX_TOLERANCE


def ray_engine_name(runtime: ModelRuntime) -> str:
    """What scores the rows on Ray actors: ``ray/onnxruntime`` or ``ray/<sklearn engine>``.

    Example:
        >>> ray_engine_name(runtime)
        'ray/onnxruntime'
    """
    if native_model(runtime, "ray") is not None:
        return "ray/native"
    return "ray/" + ("onnxruntime" if use_onnx(runtime, "ray") else runtime.sklearn_engine)


def native_model(runtime: ModelRuntime, engine: str) -> NativeModel | None:
    """The bundle's compiled model when ``engine`` may use it and it can be trusted here.

    ``auto`` (and each Ray actor) prefers it; ``native`` requires it (see
    :func:`check_engine`); ``onnx`` and ``sklearn`` never use it.

    Example:
        >>> native_model(runtime, "auto") is not None   # a compiled HistGradientBoosting
        True
    """
    if engine not in ("auto", "native", "ray") or runtime.bundle_dir is None:
        return None
    return NativeModel.load(Bundle(runtime.bundle_dir), runtime)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _one_thread_session(runtime: ModelRuntime) -> Any:
    """A one-thread ONNX Runtime session over the export the runtime already checked, or None."""
    if runtime.onnx is None or runtime.bundle_dir is None:
        return None
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = Bundle(runtime.bundle_dir).onnx_model_path.read_bytes()
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # fall back to the runtime's own engine
        logger.warning("batch: cannot open the ONNX export (%s); using %s", exc, runtime.engine)
        return None
