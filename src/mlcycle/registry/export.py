"""Embedded export: the model as an ONNX file, refused unless it reproduces scikit-learn.

What is exported is the estimator, on the encoded float matrix; the
preprocessing (numeric passthrough, ordinal or one-hot codes with fixed
categories) is written into ``manifest.json`` so a device can rebuild the
matrix with a dict lookup per category (see ``examples/embedded/``).
``export_onnx`` converts with skl2onnx, scores the holdout rows with both
ONNX Runtime and scikit-learn, and writes nothing unless the maximum absolute
difference of the probabilities (values for regression) is within
``tolerance``. A HistGradientBoosting model with *native* categorical
features is the known case that converts wrongly; it is caught here.

Output folder: ``model.onnx``, ``manifest.json`` (inputs, preprocessing,
outputs, classes, parity), ``parity.json`` and ``schema.json``.

Example:
    >>> report = export_onnx(pipeline, holdout, Path("out"), name="flights", version=3,
    ...                      task="binary", classes=[False, True], schema=schema)
    >>> report["max_abs_diff"] < 1e-5, report["label_agreement"]
    (True, 1.0)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle import preprocessing
from mlcycle.bundle import (
    ONNX_MANIFEST_FILE,
    ONNX_MODEL_FILE,
    ONNX_PARITY_FILE,
    SCHEMA_FILE,
    Bundle,
)
from mlcycle.errors import BadInput
from mlcycle.schema import Schema

TOLERANCE = 1e-5
# What the parity rows were, as recorded in the report: the evaluation's holdout
# split when the model has one, else the bundle's reference sample (training rows).
HOLDOUT = "holdout"
REFERENCE_SAMPLE = "reference sample"
OPSET = {"": 17, "ai.onnx.ml": 3}
FORMAT = "mlcycle-onnx/1"


def export_onnx(
    model: Any,
    holdout: pd.DataFrame,
    out_dir: Path,
    *,
    name: str,
    version: int | None,
    task: str,
    classes: list[Any] | None,
    schema: Schema,
    positive_label: Any = None,
    tolerance: float = TOLERANCE,
    rows_source: str = HOLDOUT,
) -> dict[str, Any]:
    """Convert ``model`` (a fitted ``Pipeline([ColumnTransformer, estimator])``) and check parity.

    ``holdout`` holds validated feature rows; ``rows_source`` says what they
    are (``holdout`` or ``reference sample``) and is recorded in the report.
    Raises :class:`BadInput` when the model cannot be converted or the parity
    check fails; then nothing is written. Returns the parity report.

    Example:
        >>> export_onnx(pipeline, holdout, Path("out"), name="flights", version=3,
        ...             task="binary", classes=[False, True], schema=schema)["passed"]
        True
    """
    if len(holdout) == 0:
        raise BadInput(
            "cannot check the ONNX export", "there are no holdout rows", "pass holdout rows"
        )
    preprocessing = describe_preprocessing(model)
    estimator = model.steps[-1][1]
    matrix = np.asarray(model[:-1].transform(holdout), dtype=np.float64)
    onnx_bytes = convert_estimator(estimator, matrix.shape[1])
    # The truth is the whole pipeline on the rows, not the estimator on our matrix.
    report = parity(onnx_bytes, model, matrix, holdout, task=task, tolerance=tolerance)
    report["source"] = rows_source
    if not report["passed"]:
        raise BadInput(
            f"refusing the ONNX export of model '{name}'",
            f"on {report['rows']} {rows_source} rows the converted model differs from "
            f"scikit-learn by up to {report['max_abs_diff']:.3g} (tolerance {tolerance:g}); "
            f"label agreement {report['label_agreement']:.4f}",
            "serve the scikit-learn model instead, or avoid features the converter gets wrong "
            "(e.g. HistGradientBoosting's native categorical support: use ordinal codes)",
        )
    manifest = {
        "format": FORMAT,
        "model": name,
        "model_version": version,
        "task": task,
        "classes": classes,
        "positive_label": positive_label,
        "features": [c.name for c in schema.columns if c.name in list(holdout.columns)],
        "input": {"name": "X", "dtype": "float32", "shape": [-1, int(matrix.shape[1])]},
        "preprocessing": preprocessing,
        "outputs": (
            {"label": "label", "probabilities": "probabilities"}
            if task != "regression"
            else {"value": "variable"}
        ),
        "estimator_classes": estimator_classes(estimator),
        "opset": OPSET,
        "parity": report,
    }
    out_dir = Path(out_dir)
    with atomic_folder(out_dir) as folder:
        (folder / ONNX_MODEL_FILE).write_bytes(onnx_bytes)
        (folder / ONNX_MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        (folder / ONNX_PARITY_FILE).write_text(json.dumps(report, indent=1), encoding="utf-8")
        (folder / SCHEMA_FILE).write_text(schema.model_dump_json(indent=1), encoding="utf-8")
    return report


def describe_preprocessing(model: Any) -> list[dict[str, Any]]:
    """The preprocessing of ``Pipeline([ColumnTransformer, estimator])`` as manifest data.

    One entry per block of output columns: ``{"feature", "how": number |
    ordinal | onehot, "categories"}``, read by
    :func:`mlcycle.preprocessing.describe_preprocessing` (the serving fast
    path reads the same description). Raises :class:`BadInput` for steps a
    device could not reproduce from a manifest.

    Example:
        >>> describe_preprocessing(pipeline)[0]
        {'feature': 'distance', 'how': 'number'}
    """
    try:
        return preprocessing.describe_preprocessing(model).to_manifest()
    except preprocessing.UnsupportedPreprocessing as exc:
        raise _unsupported(exc.why) from None


def convert_estimator(estimator: Any, width: int) -> bytes:
    """The estimator as ONNX bytes (input ``X``: float32 ``[n, width]``).

    Example:
        >>> onnx_bytes = convert_estimator(pipeline.steps[-1][1], width=12)
    """
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError:
        raise BadInput(
            "cannot export to ONNX",
            "skl2onnx is not installed",
            "pip install 'mlcycle[onnx]' (skl2onnx and onnxruntime)",
        ) from None
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    try:
        with _leaf_flags_as_ints():
            onx = convert_sklearn(
                estimator,
                initial_types=[("X", FloatTensorType([None, width]))],
                options=options,
                target_opset=OPSET,
            )
    except Exception as exc:
        raise BadInput(
            f"cannot convert a {type(estimator).__name__} to ONNX",
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
            "serve it with scikit-learn (the REST service and batch job do), or choose a "
            "model family skl2onnx supports",
        ) from None
    return bytes(onx.SerializeToString())


def parity(
    onnx_bytes: bytes,
    model: Any,
    matrix: np.ndarray,
    rows: pd.DataFrame,
    *,
    task: str,
    tolerance: float,
) -> dict[str, Any]:
    """Score ``matrix`` with ONNX Runtime and scikit-learn; compare.

    Example:
        >>> parity(onnx_bytes, pipeline, matrix, rows, task="binary", tolerance=1e-5)["passed"]
        True
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"X": matrix.astype(np.float32)})
    if task == "regression":
        ours = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        theirs = np.asarray(model.predict(rows), dtype=np.float64).reshape(-1)
        agreement = 1.0
    else:
        ours = np.asarray(outputs[-1], dtype=np.float64)
        theirs = np.asarray(model.predict_proba(rows), dtype=np.float64)
        if ours.shape != theirs.shape:
            return parity_report(len(matrix), math.inf, 0.0, tolerance)
        agreement = float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)))
    diff = float(np.max(np.abs(ours - theirs))) if ours.shape == theirs.shape else math.inf
    return parity_report(len(matrix), diff, agreement, tolerance)


def parity_report(rows: int, diff: float, agreement: float, tolerance: float) -> dict[str, Any]:
    """The parity record an export keeps: passed only for a finite ``diff`` within ``tolerance``.

    Example:
        >>> parity_report(100, 2e-7, 1.0, 1e-5)["passed"]
        True
    """
    finite = math.isfinite(diff)
    return {
        "rows": rows,
        "max_abs_diff": diff if finite else None,
        "label_agreement": agreement,
        "tolerance": tolerance,
        "passed": bool(finite and diff <= tolerance),
    }


@contextlib.contextmanager
def _leaf_flags_as_ints() -> Iterator[None]:
    """skl2onnx 1.20 writes a Python bool for the missing-value flag of HistGradientBoosting
    leaves, which onnx refuses (ints only); coerce it while converting."""
    try:
        from skl2onnx.common import tree_ensemble
    except ImportError:
        yield
        return
    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        flag = kwargs.get("nodes_missing_value_tracks_true")
        if flag is not None:
            kwargs["nodes_missing_value_tracks_true"] = int(flag)
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Write into a temp folder beside ``target``, then swap it in (nothing half-written).

    Example:
        >>> with atomic_folder(Path("bundle/onnx")) as folder:
        ...     (folder / "model.onnx").write_bytes(onnx_bytes)
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def estimator_classes(estimator: Any) -> list[Any] | None:
    """The estimator's ``classes_`` as JSON values (a manifest's ``estimator_classes``).

    Example:
        >>> estimator_classes(hgb_classifier)
        [False, True]
    """
    classes = getattr(estimator, "classes_", None)
    return None if classes is None else list(np.asarray(classes).tolist())


def _unsupported(why: str) -> BadInput:
    return BadInput(
        "cannot export this model to ONNX",
        why,
        "the export covers numeric passthrough, OrdinalEncoder and OneHotEncoder "
        "preprocessing; serve other pipelines with scikit-learn",
    )


def export_bundle(
    bundle_dir: Path,
    holdout: pd.DataFrame,
    out_dir: Path | None = None,
    *,
    rows_source: str = HOLDOUT,
) -> dict[str, Any]:
    """Export the model of a bundle folder (into ``<bundle>/onnx`` by default).

    ``holdout`` holds rows with at least the model's features; rows with a
    null in a non-nullable feature are dropped first. ``rows_source`` names
    them in the report (``holdout`` or ``reference sample``).

    Example:
        >>> export_bundle(Path("bundle"), test_split)["passed"]
        True
    """
    bundle = Bundle(bundle_dir)
    meta = bundle.meta()
    by_name = {c.name: c for c in bundle.schema().columns}
    rows = contract_rows(bundle, holdout, "the ONNX export")
    features_schema = Schema(columns=[by_name[f] for f in meta.features if f in by_name])
    return export_onnx(
        bundle.load_model(),
        rows,
        out_dir or bundle.onnx_dir,
        name=meta.name,
        version=None,
        task=meta.task,
        classes=meta.classes,
        schema=features_schema,
        positive_label=meta.positive_label,
        rows_source=rows_source,
    )


def try_export_bundle(
    bundle_dir: Path, holdout: pd.DataFrame | None = None
) -> dict[str, Any] | None:
    """:func:`export_bundle` for registration: any failure is logged, never raised.

    The parity check runs on ``holdout`` (the evaluation's test split); only
    without one does it fall back to the bundle's reference sample
    (training rows), and the report's ``source`` says which.

    Example:
        >>> try_export_bundle(staging_folder, test_split)  # in the gate's package step
    """
    import logging

    try:
        rows, source = parity_rows(bundle_dir, holdout)
        return export_bundle(bundle_dir, rows, rows_source=source)
    except Exception as exc:
        logging.getLogger("mlcycle.registry").info("no ONNX export for this bundle: %s", exc)
        return None


def parity_rows(bundle_dir: Path, holdout: pd.DataFrame | None) -> tuple[pd.DataFrame, str]:
    """The rows a registration-time check runs on, and what they are.

    The evaluation's test split when there is one (:data:`HOLDOUT`), else the
    bundle's reference sample of training rows (:data:`REFERENCE_SAMPLE`).

    Example:
        >>> parity_rows(staging_folder, None)[1]
        'reference sample'
    """
    if holdout is None or len(holdout) == 0:
        return Bundle(bundle_dir).reference(), REFERENCE_SAMPLE
    return holdout, HOLDOUT


def contract_rows(bundle: Bundle, rows: pd.DataFrame, checked: str) -> pd.DataFrame:
    """The model's feature columns of ``rows``, without rows the contract refuses.

    A row with a null in a non-nullable feature never reaches a scorer, so it
    does not judge one. Raises :class:`BadInput` (naming ``checked``) when a
    feature is missing.

    Example:
        >>> contract_rows(bundle, test_split, "the ONNX export").columns.tolist() == features
        True
    """
    features = bundle.meta().features
    missing = [f for f in features if f not in rows.columns]
    if missing:
        raise BadInput(
            f"cannot check {checked}",
            f"the holdout rows lack feature(s): {', '.join(missing)}",
            "pass rows with every feature",
        )
    by_name = {c.name: c for c in bundle.schema().columns}
    strict = [f for f in features if f in by_name and not by_name[f].nullable]
    kept = rows[features].dropna(subset=strict) if strict else rows[features]
    return kept.reset_index(drop=True)
