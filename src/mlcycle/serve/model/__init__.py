"""The model runtime: a bundle loaded, its inputs checked, its predictions made fast.

What is here: loading a bundle (through :class:`mlcycle.bundle.Bundle`) and the
checks a model passes before it serves (``loading.py``); :class:`ModelRuntime`
(``runtime.py``); input validation and coercion to the data contract
(``validation.py``, ``coerce.py``); numbers outside the training range
(``ranges.py``); the compiled fast path that rebuilds the
estimator's matrix without pandas (``fastpath.py``); ONNX Runtime
(``onnx_model.py``); a tree ensemble compiled to native code
(``native_model.py``, batch only); and the garbage-collector settings of a serving process
(``gctune.py``). The REST app, the batch job and the prediction log use it;
it uses none of them.

Example:
    >>> rt = ModelRuntime.load(Path("bundle"), version=3)
    >>> matrix = rt.encode_records(rows)          # None: take validate_records
    >>> labels, proba = rt.predict_matrix(matrix)
"""

from mlcycle.serve.model.coerce import InputError
from mlcycle.serve.model.fastpath import Plan, category_codes, compile_plan, same_matrix
from mlcycle.serve.model.gctune import (
    GEN0_THRESHOLD,
    freeze_for_exit,
    refreeze,
    settle_heap,
)
from mlcycle.serve.model.native_model import NativeModel
from mlcycle.serve.model.onnx_model import OnnxModel
from mlcycle.serve.model.ranges import checked_ranges, frame_outside, outside_masks
from mlcycle.serve.model.runtime import ONNX_TOLERANCE, SINGLE_THREAD_ROWS, ModelRuntime
from mlcycle.serve.model.validation import RowCheck

__all__ = [
    "GEN0_THRESHOLD",
    "ONNX_TOLERANCE",
    "SINGLE_THREAD_ROWS",
    "InputError",
    "ModelRuntime",
    "NativeModel",
    "OnnxModel",
    "Plan",
    "RowCheck",
    "category_codes",
    "checked_ranges",
    "compile_plan",
    "frame_outside",
    "freeze_for_exit",
    "outside_masks",
    "refreeze",
    "same_matrix",
    "settle_heap",
]
