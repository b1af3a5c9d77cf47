"""Serving: the model runtime, the REST app and batch prediction.

Imports no training library and no other stage: it is given a bundle folder.

Example:
    >>> from mlcycle.serve import ModelRuntime, create_app, predict_file
    >>> runtime = ModelRuntime.load(Path("bundle"), version=3)
    >>> predict_file(runtime, "new.parquet", "scored.parquet")
"""

from mlcycle.serve.app import create_app
from mlcycle.serve.batch import predict_file
from mlcycle.serve.runtime import InputError, ModelRuntime, RowCheck

__all__ = ["InputError", "ModelRuntime", "RowCheck", "create_app", "predict_file"]
