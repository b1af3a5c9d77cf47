"""Reading a model bundle's parts for serving, with errors a person can act on, and the
checks a loaded model must pass before it serves.

The paths come from :class:`mlcycle.bundle.Bundle` (the one owner of the
layout); what is here is serving's stricter reading: a missing part is
:class:`NotFound`, an unreadable one names the package or the field at fault.

Example:
    >>> bundle = Bundle(Path("bundle"))
    >>> meta = read_json_model(bundle.meta_path, BundleMeta)
    >>> model = read_joblib(bundle.model_path)
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from mlcycle.artifacts import BundleMeta
from mlcycle.bundle import SERVING_FILES
from mlcycle.errors import BadInput, NotFound
from mlcycle.schema import Schema

logger = logging.getLogger("mlcycle.serve")
# Rows of reference.parquet the compiled path is checked on at load.
CHECK_ROWS = 2000


# --- loading helpers ----------------------------------------------------------------


def read_json_model(path: Path, model: type[Any]) -> Any:
    """A bundle's JSON part parsed as ``model`` (a pydantic model class).

    Example:
        >>> read_json_model(bundle.meta_path, BundleMeta).name
        'flights'
    """
    if not path.is_file():
        raise NotFound(
            f"{path.name} not found in model bundle {path.parent}",
            f"a bundle folder holds {', '.join(SERVING_FILES)}",
            "re-register the model, or pass the right bundle folder",
        )
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}"
            for e in exc.errors()[:3]
        )
        raise BadInput(
            f"{path} is not a valid {path.name}",
            problems,
            "re-register the model with this version of mlcycle",
        ) from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}", str(exc), "check the file's permissions") from None


def read_joblib(path: Path) -> Any:
    """The fitted model in a bundle's joblib file; version warnings are logged, not raised.

    Example:
        >>> read_joblib(bundle.model_path).predict_proba(frame)
    """
    if not path.is_file():
        raise NotFound(
            f"{path.name} not found in model bundle {path.parent}",
            f"a bundle folder holds {', '.join(SERVING_FILES)}",
            "re-register the model, or pass the right bundle folder",
        )
    try:
        import joblib  # here: a runtime built from the ONNX export never unpickles

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = joblib.load(path)
    except ModuleNotFoundError as exc:
        raise BadInput(
            f"cannot load {path}",
            f"the model needs the Python package '{exc.name}', which is not installed",
            f"install it in the serving environment (pip install {exc.name})",
        ) from None
    except Exception as exc:
        raise BadInput(
            f"cannot load {path}",
            f"{type(exc).__name__}: {exc}",
            "re-register the model with the scikit-learn version installed here",
        ) from None
    for w in caught:
        # e.g. InconsistentVersionWarning: worth knowing, not worth refusing to serve.
        logger.warning("loading %s: %s", path, w.message)
    if not hasattr(model, "predict"):
        raise BadInput(
            f"{path} does not hold a model",
            f"it holds a {type(model).__name__}, which has no predict()",
            "re-register the model",
        )
    return model


def read_sample(path: Path, features: list[str]) -> pd.DataFrame | None:
    """Up to ``CHECK_ROWS`` training rows from the bundle, to check the fast paths on.

    Example:
        >>> read_sample(bundle.reference_path, ["distance", "carrier"]).shape
        (2000, 2)
    """
    if not path.is_file():
        return None
    try:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        names = set(table.schema_arrow.names)
        if not set(features) <= names:
            return None
        batch = next(table.iter_batches(batch_size=CHECK_ROWS, columns=features), None)
        return None if batch is None else batch.to_pandas()
    except Exception as exc:
        logger.warning("cannot read %s to check the fast path: %s", path, exc)
        return None


def input_schema_of(meta: BundleMeta, schema: Schema) -> Schema:
    """The contract of exactly the model's features, in the model's order.

    Example:
        >>> [c.name for c in input_schema_of(meta, schema).columns] == meta.features
        True

    A column may be in the dataset's schema without being a feature (excluded
    by the spec), so the model's own feature list decides what is required.
    """
    by_name = {c.name: c for c in schema.columns}
    absent = [f for f in meta.features if f not in by_name]
    if absent:
        raise BadInput(
            f"model '{meta.name}' needs feature(s) the bundle's schema.json does not describe: "
            + ", ".join(absent),
            "the schema is the contract every request is checked against",
            "re-register the model so schema.json covers every feature",
        )
    return Schema(
        columns=[by_name[f].model_copy(update={"role": "feature"}) for f in meta.features]
    )


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) or str(a) == str(b)


def class_order(model: Any, meta: BundleMeta) -> tuple[np.ndarray, list[Any]]:
    """Map ``meta.classes`` to the columns of the model's ``predict_proba``.

    Example:
        >>> order, classes = class_order(model, meta)
        >>> proba = model.predict_proba(frame)[:, order]   # columns in ``classes`` order
    """
    fitted = getattr(model, "classes_", None)
    if fitted is None or not hasattr(model, "predict_proba"):
        raise BadInput(
            f"model '{meta.name}' is a {meta.task} classifier without predict_proba/classes_",
            "serving returns class probabilities",
            "register a classifier that implements predict_proba",
        )
    return classes_order(np.asarray(fitted).tolist(), meta)


def classes_order(fitted_list: list[Any], meta: BundleMeta) -> tuple[np.ndarray, list[Any]]:
    """:func:`class_order` from the estimator's classes as a list (e.g. an ONNX manifest's).

    Example:
        >>> classes_order([False, True], meta)[0].tolist()
        [0, 1]
    """
    wanted = list(meta.classes) if meta.classes is not None else fitted_list
    order: list[int] = []
    for label in wanted:
        hits = [j for j, f in enumerate(fitted_list) if _same(f, label)]
        if len(hits) != 1:
            break
        order.append(hits[0])
    if len(order) != len(wanted) or sorted(order) != list(range(len(fitted_list))):
        raise BadInput(
            f"model '{meta.name}': meta.json classes {wanted} do not match the model's "
            f"classes {fitted_list}",
            "probabilities are reported in meta.classes order",
            "re-register the model",
        )
    return np.asarray(order, dtype=np.intp), wanted


def positive_index_of(meta: BundleMeta, classes: list[Any]) -> int:
    """Where ``meta.positive_label`` is in ``classes`` (the last class when unset).

    Example:
        >>> positive_index_of(meta, [False, True])
        1
    """
    if meta.positive_label is None:
        return len(classes) - 1
    for i, label in enumerate(classes):
        if _same(label, meta.positive_label):
            return i
    raise BadInput(
        f"model '{meta.name}': positive_label {meta.positive_label!r} is not one of {classes}",
        "the binary probability is reported for the positive class",
        "re-register the model",
    )


def decision_threshold_of(meta: BundleMeta) -> float | None:
    """``meta.decision_threshold``, refused where it cannot mean what it says.

    A threshold on P(positive) labels a binary model only; NaN would label
    every row negative without a word.

    Example:
        >>> decision_threshold_of(meta)   # a binary bundle with a benefit matrix
        0.095
    """
    threshold = meta.decision_threshold
    if threshold is None:
        return None
    if meta.task != "binary":
        raise BadInput(
            f"model '{meta.name}': meta.json has decision_threshold {threshold}",
            f"a decision threshold on P(positive) labels binary models; this one is {meta.task}",
            "re-register the model, or remove decision_threshold from its meta.json",
        )
    if not math.isfinite(threshold):
        raise BadInput(
            f"model '{meta.name}': meta.json has decision_threshold {threshold}",
            "the threshold must be a finite number",
            "re-register the model so the gate writes the threshold chosen on validation",
        )
    return float(threshold)


def check_model_inputs(model: Any, meta: BundleMeta, features: list[str]) -> None:
    """Refuse a model fitted on other columns (or another order) than ``meta.features``.

    Example:
        >>> check_model_inputs(model, meta, meta.features)   # raises BadInput on a mismatch
    """
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and list(fitted) != features:
        raise BadInput(
            f"model '{meta.name}' was fitted on columns {list(fitted)} "
            f"but meta.json lists features {features}",
            "the model would receive columns in the wrong order",
            "re-register the model",
        )


def openmp_controller() -> Any:
    """threadpoolctl's controller of the OpenMP pools loaded, or ``None`` without one.

    Example:
        >>> with openmp_controller().limit(limits=1): ...
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a scikit-learn dependency, normally there
        return None
    controller = ThreadpoolController().select(user_api="openmp")
    return controller if controller.lib_controllers else None


def check_rows_out(values: np.ndarray, rows: int) -> None:
    """Fail loudly when a model returns another number of rows than it was given.

    Example:
        >>> check_rows_out(np.zeros(3), 3)
    """
    if values.shape[0] != rows:
        raise RuntimeError(f"the model returned {values.shape[0]} rows for {rows} inputs")
