"""Serving: the model runtime, the REST app, batch prediction and the prediction log writer.

Imports no training library and no other stage: it is given a bundle folder.
Four subpackages, each with a small public surface:

- ``serve.model``: :class:`ModelRuntime` (loading a bundle, input checks, the
  compiled fast path, ONNX Runtime);
- ``serve.http``: :func:`create_app` from one :class:`ServeSettings`, routes,
  OpenAPI, auth, metrics, the worker supervisor;
- ``serve.batch``: :func:`predict_file`;
- ``serve.predlog``: :class:`PredictionLog` and :class:`LogRows` (the one shape
  of a logged row), writing the log :mod:`mlcycle.predlog` defines.

Example:
    >>> from mlcycle.serve import ModelRuntime, create_app, predict_file
    >>> runtime = ModelRuntime.load(Path("bundle"), version=3)
    >>> predict_file(runtime, "new.parquet", "scored.parquet")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcycle.serve.batch import predict_file
    from mlcycle.serve.http import ServeSettings, create_app
    from mlcycle.serve.model import InputError, ModelRuntime, RowCheck
    from mlcycle.serve.predlog import LogRows, PredictionLog

# Each name is imported from its subpackage on first use, so a batch job (`mlcycle
# predict`) does not import the HTTP stack, nor a server the batch code.
_HOMES = {
    "predict_file": "mlcycle.serve.batch",
    "ServeSettings": "mlcycle.serve.http",
    "create_app": "mlcycle.serve.http",
    "InputError": "mlcycle.serve.model",
    "ModelRuntime": "mlcycle.serve.model",
    "RowCheck": "mlcycle.serve.model",
    "LogRows": "mlcycle.serve.predlog",
    "PredictionLog": "mlcycle.serve.predlog",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'mlcycle.serve' has no attribute {name!r}")


__all__ = [
    "InputError",
    "LogRows",
    "ModelRuntime",
    "PredictionLog",
    "RowCheck",
    "ServeSettings",
    "create_app",
    "predict_file",
]
