"""The in-process model runtime: load a bundle folder, check inputs, predict.

Everything that serves predictions (the REST app, the batch job, an embedding
program) goes through :class:`ModelRuntime`, so the data contract is enforced
in one place. Inputs are checked against the bundle's ``schema.json`` (the same
contract the data stage froze, via :func:`mlcycle.schema.check_frame`), coerced
to the dtypes a training frame has, and only then handed to the fitted
pipeline, so no input can make the model itself fail. The checks live in
``serve/model/validation.py`` (:class:`~mlcycle.serve.model.validation.InputChecks`, a
mixin of :class:`ModelRuntime`); loading, compiling and predicting here.

Dtypes handed to the pipeline, by schema kind (what a pandas 3 training frame
read from Parquet has): numeric → ``float64`` (NaN for null); categorical and
string → pandas ``"str"`` (NaN for null; whole numbers are accepted and become
their decimal text); boolean → ``bool`` (``float64`` 0/1/NaN when a null is
present); datetime → ``datetime64`` (offsets converted to UTC, then dropped).

Example:
    >>> rt = ModelRuntime.load(Path("bundle"), version=3)
    >>> X = rt.validate_records([{"dep_delay": 12.0, "distance": 733, "carrier": "AA"}])
    >>> rt.predict(X)["predictions"]
    [True]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import BundleMeta, Profile
from mlcycle.bundle import META_FILE, SERVING_FILES, Bundle, check_model_name
from mlcycle.errors import BadInput, NotFound
from mlcycle.preprocessing import Preprocessing, UnsupportedPreprocessing
from mlcycle.schema import Schema
from mlcycle.serve.model.coerce import InputError
from mlcycle.serve.model.fastpath import Plan, compile_plan, plan_from, same_matrix
from mlcycle.serve.model.loading import (
    CHECK_ROWS,
    check_model_inputs,
    check_rows_out,
    class_order,
    classes_order,
    decision_threshold_of,
    input_schema_of,
    openmp_controller,
    positive_index_of,
    read_joblib,
    read_json_model,
    read_sample,
)
from mlcycle.serve.model.onnx_model import OnnxModel
from mlcycle.serve.model.ranges import (
    POLICIES,
    Outside,
    checked_ranges,
    frame_outside,
    row_warnings,
)
from mlcycle.serve.model.validation import InputChecks, RowCheck

__all__ = ["SINGLE_THREAD_ROWS", "InputError", "ModelRuntime", "RowCheck"]

logger = logging.getLogger("mlcycle.serve")

TASKS = ("binary", "multiclass", "regression")
# Below this many rows a prediction runs on one OpenMP thread: waking the pool
# costs more than the work (HistGradientBoosting: ~0.4 ms vs 0.5-4 ms per row).
SINGLE_THREAD_ROWS = 512
# The ONNX export is used only while it agrees with scikit-learn this closely.
ONNX_TOLERANCE = 1e-5


def _sklearn_quiet() -> Any:
    """scikit-learn's context that skips parameter validation (imported only when it scores)."""
    import sklearn

    return sklearn.config_context(skip_parameter_validation=True)


class ModelRuntime(InputChecks):
    """A loaded model bundle, ready to check inputs and predict.

    Attributes: ``meta`` (:class:`BundleMeta`), ``schema`` (the bundle's full
    :class:`Schema`), ``input_schema`` (just the model's features, in order),
    ``version``, ``model`` (the fitted pipeline), ``classes`` (labels in
    ``meta.classes`` order; ``None`` for regression), ``order`` (the estimator's
    ``predict_proba`` columns to take, in ``classes`` order; ``None`` for regression),
    ``out_of_range`` (the policy in force for numbers outside the training range:
    the bundle's ``meta.out_of_range`` unless ``out_of_range=`` overrides it) and
    ``ranges`` (the features it checks, ``name → (low, high)``: ``profile``'s
    ``min``/``max``, else the schema's; see ``ranges.py``).

    ``model`` may be ``None`` with ``estimator_classes`` (the classes the ONNX
    manifest records) and ``bundle_dir``: then the pipeline is unpickled from the
    bundle on first use of :attr:`model` or :attr:`estimator` (see
    :meth:`load`'s ``from_export``).

    Example:
        >>> rt = ModelRuntime.load(Path(".mlcycle/bundles/ab12"), version=3)
        >>> rt.predict(rt.validate_frame(df))["probabilities"][0]
        [0.82, 0.18]
    """

    def __init__(
        self,
        model: Any,
        meta: BundleMeta,
        schema: Schema,
        version: int | None = None,
        bundle_dir: Path | None = None,
        out_of_range: str | None = None,
        profile: Profile | None = None,
        *,
        estimator_classes: list[Any] | None = None,
    ) -> None:
        if out_of_range is not None and out_of_range not in POLICIES:
            raise BadInput(
                f"unknown out-of-range policy '{out_of_range}'",
                "a number outside its training range is either flagged or rejected",
                f"use one of: {', '.join(POLICIES)}",
            )
        if meta.task not in TASKS:
            raise BadInput(
                f"model '{meta.name}' has unknown task '{meta.task}'",
                f"{META_FILE} must say one of: {', '.join(TASKS)}",
                "re-register the model with this version of mlcycle",
            )
        self._model = model
        self._model_lock = threading.Lock()
        self.meta = meta
        self.schema = schema
        self.version = version
        self.bundle_dir = bundle_dir
        self.input_schema = input_schema_of(meta, schema)
        self.features = [c.name for c in self.input_schema.columns]
        self.out_of_range: str = out_of_range or meta.out_of_range
        self.ranges = checked_ranges(self.input_schema, meta.seasonal, profile)
        self.is_classifier = meta.task != "regression"
        self.order: np.ndarray | None = None
        self.classes: list[Any] | None = None
        if self.is_classifier:
            if model is None:  # built from the ONNX export: its manifest names the classes
                self.order, self.classes = classes_order(list(estimator_classes or []), meta)
            else:
                self.order, self.classes = class_order(model, meta)
        self.positive_label: Any = None
        self.positive_index: int | None = None
        if meta.task == "binary" and self.classes is not None:
            self.positive_index = positive_index_of(meta, self.classes)
            self.positive_label = self.classes[self.positive_index]
        # Chosen once here so labelling a row costs one comparison (the hot path).
        self.decision_threshold = decision_threshold_of(meta)
        self._positive_index = self.positive_index or 0
        self._negative_index = 1 - self._positive_index
        self._omp: Any = None
        if model is not None:
            check_model_inputs(model, meta, self.features)
            self._omp = openmp_controller()
        # Set by compile(): the pandas-free path and, when present, the ONNX export.
        self.plan: Plan | None = None
        self._estimator: Any = None
        self.onnx: OnnxModel | None = None
        # The largest |Δ| between the ONNX export and scikit-learn: seen by compile() on
        # sample rows ("load"), or the export's parity record ("export") when built from it.
        self.onnx_max_diff: float | None = None
        self.onnx_checked: str | None = None

    @property
    def model(self) -> Any:
        """The fitted pipeline; a runtime built from the ONNX export unpickles it on first use.

        Example:
            >>> rt = ModelRuntime.load("bundle", from_export=True)
            >>> rt.model.steps[-1][0]   # unpickled (and checked against the manifest) now
            'model'
        """
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._unpickle()
        return self._model

    @model.setter
    def model(self, value: Any) -> None:
        self._model = value

    @property
    def estimator(self) -> Any:
        """The pipeline's estimator once a fast path is compiled (``None`` without one)."""
        if self._estimator is None and self.plan is not None:
            self._estimator = self.model.steps[-1][1]
        return self._estimator

    @estimator.setter
    def estimator(self, value: Any) -> None:
        self._estimator = value

    @property
    def model_loaded(self) -> bool:
        """Whether the scikit-learn pipeline has been unpickled (a lazy runtime defers it)."""
        return self._model is not None

    def _unpickle(self) -> Any:
        """The bundle's pipeline, refused unless it is the model the ONNX manifest describes."""
        if self.bundle_dir is None:
            raise RuntimeError("a runtime without a model needs its bundle folder")
        bundle = Bundle(self.bundle_dir)
        model = read_joblib(bundle.model_path)
        check_model_inputs(model, self.meta, self.features)
        same = True
        if self.is_classifier and self.order is not None:
            same = class_order(model, self.meta)[0].tolist() == self.order.tolist()
        if same and self.plan is not None:
            described = compile_plan(
                model,
                self.input_schema,
                self.meta.unseen_category,
                self.ranges,
                self.out_of_range,
            )
            same = described == self.plan
        if not same:
            raise BadInput(
                f"model bundle {self.bundle_dir}: {bundle.onnx_manifest_path.name} does not "
                f"describe {bundle.model_path.name}",
                "the export's classes or preprocessing differ from the fitted pipeline's",
                "re-register the model (mlcycle run --force), or score with --engine sklearn",
            )
        self._omp = openmp_controller()
        return model

    @property
    def engine(self) -> str:
        """What scores rows: ``onnxruntime``, ``sklearn-compiled`` or ``sklearn-pipeline``."""
        return "onnxruntime" if self.onnx is not None else self.sklearn_engine

    @property
    def sklearn_engine(self) -> str:
        """What scores rows when ONNX is not used: ``sklearn-compiled`` or ``sklearn-pipeline``."""
        return "sklearn-compiled" if self.plan is not None else "sklearn-pipeline"

    # --- loading --------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        bundle_dir: Path | str,
        version: int | None = None,
        *,
        warmup: bool = True,
        bundle_id: str | None = None,
        verify: bool = True,
        out_of_range: str | None = None,
        from_export: bool = False,
        lazy_onnx: bool = False,
    ) -> ModelRuntime:
        """Load a bundle folder (its serving parts, see :class:`mlcycle.bundle.Bundle`).

        Raises :class:`NotFound` when the folder or a file is missing and
        :class:`BadInput` when one cannot be read. With ``warmup`` one
        synthetic row is predicted so the first real request pays no
        first-call costs.

        Unpickling ``model.joblib`` runs code, so the folder is checked against
        its content id first: ``bundle_id`` when given, else the folder's own
        name when it is one (every folder in the store is). A folder with any
        other name is trusted as given. ``verify=False`` is for a caller that
        has just verified the same folder (hashing costs tens of ms).
        ``out_of_range`` (``flag`` or ``reject``) overrides the bundle's policy.

        ``from_export=True`` builds the runtime from the bundle's ONNX export
        when it can be trusted without scikit-learn: its parity record passed
        within :data:`ONNX_TOLERANCE` and its manifest describes preprocessing a
        lookup reproduces exactly (``exact`` on every block). Then
        ``model.joblib`` is not unpickled and scikit-learn not imported until
        something needs the pipeline (:attr:`model`, :attr:`estimator`), and
        :attr:`onnx_max_diff` is the parity record's (``onnx_checked``:
        ``"export"``). Otherwise it loads as without it. A batch job that
        scores through ONNX uses it: the import of scikit-learn (and SciPy)
        was most of its fixed cost. ``lazy_onnx`` skips the export's one-row
        check and opens ONNX Runtime only when something scores through it.

        Example:
            >>> rt = ModelRuntime.load("bundle", version=2)
            >>> rt.meta.name, rt.version
            ('flights', 2)
        """
        folder = Path(bundle_dir)
        if not folder.exists():
            raise NotFound(
                f"model bundle {folder} not found",
                "the folder does not exist",
                "pass the bundle folder the registry wrote (mlcycle models show NAME)",
            )
        if not folder.is_dir():
            raise BadInput(
                f"model bundle {folder} is not a folder",
                f"a bundle is a folder with {', '.join(SERVING_FILES)}",
                "pass the bundle folder, not a file inside it",
            )
        bundle = Bundle(folder)
        if bundle_id is not None:
            bundle.verify(bundle_id)
        elif verify:
            bundle.verify_addressed()
        meta = read_json_model(bundle.meta_path, BundleMeta)
        check_model_name(meta.name, str(bundle.meta_path))  # it names the log's folder
        schema = read_json_model(bundle.schema_path, Schema)
        # The profile gives the training ranges (monitoring's too); an old bundle may lack it.
        profile = bundle.profile() if bundle.profile_path.exists() else None
        if from_export:
            lazy = cls._from_export(
                bundle, meta, schema, version, out_of_range, profile, lazy_onnx=lazy_onnx
            )
            if lazy is not None:
                if warmup:
                    lazy.warm_up()
                return lazy
        model = read_joblib(bundle.model_path)
        runtime = cls(
            model,
            meta,
            schema,
            version=version,
            bundle_dir=folder,
            out_of_range=out_of_range,
            profile=profile,
        )
        runtime.compile(read_sample(bundle.reference_path, runtime.features))
        if warmup:
            runtime.warm_up()
        return runtime

    @classmethod
    def _from_export(
        cls,
        bundle: Bundle,
        meta: BundleMeta,
        schema: Schema,
        version: int | None,
        out_of_range: str | None,
        profile: Profile | None,
        *,
        lazy_onnx: bool = False,
    ) -> ModelRuntime | None:
        """A runtime scoring through the ONNX export with the manifest's plan; ``None``: load
        the pipeline (no export, a failed or loose parity record, a manifest it cannot use)."""
        # None unless the parity record passed and it loads (lazy: is installed)
        onnx = OnnxModel.load(bundle, lazy=lazy_onnx)
        if onnx is None:
            return None
        manifest = onnx.manifest
        diff = (manifest.get("parity") or {}).get("max_abs_diff")
        shape = (manifest.get("input") or {}).get("shape")
        if (
            not isinstance(diff, int | float)
            or not 0 <= diff <= ONNX_TOLERANCE
            or manifest.get("task") != meta.task
            or not isinstance(shape, list)
            or len(shape) != 2
        ):
            return None
        try:
            pre = Preprocessing.from_manifest(
                manifest.get("preprocessing"), manifest.get("features")
            )
            runtime = cls(
                None,
                meta,
                schema,
                version=version,
                bundle_dir=bundle.folder,
                out_of_range=out_of_range,
                profile=profile,
                estimator_classes=manifest.get("estimator_classes"),
            )
        except (UnsupportedPreprocessing, BadInput) as exc:
            logger.info("not building the runtime from the ONNX export: %s", exc)
            return None
        runtime.plan = plan_from(
            pre,
            runtime.input_schema,
            meta.unseen_category,
            runtime.ranges,
            runtime.out_of_range,
            width=shape[1],
        )
        if runtime.plan is None:
            return None
        # One synthetic row: the session takes the plan's matrix and answers in shape.
        if not lazy_onnx and not runtime._answers_in_shape(onnx):
            return None
        runtime.onnx, runtime.onnx_max_diff, runtime.onnx_checked = onnx, float(diff), "export"
        return runtime

    def _answers_in_shape(self, onnx: OnnxModel) -> bool:
        assert self.plan is not None
        try:
            matrix = self.plan.encode_frame(self.validate_records([self._synthetic_row()]))
            width = len(self.classes or []) if self.is_classifier else None
            out = onnx.predict_proba(matrix) if width else onnx.predict(matrix)
            if out.shape != ((1, width) if width else (1,)) or not np.isfinite(out).all():
                raise ValueError(f"it answered an array of shape {out.shape}")
        except Exception as exc:
            logger.warning("the ONNX export failed its load check (%s); loading the pipeline", exc)
            return False
        return True

    def compile(self, sample: pd.DataFrame | None = None, *, onnx: bool = True) -> str:
        """Turn on the fast paths that reproduce the pipeline on ``sample`` (plus a synthetic row).

        The compiled preprocessing must give exactly the pipeline's matrix;
        the ONNX export (``<bundle>/onnx``) must agree with the estimator to
        ``ONNX_TOLERANCE``. Anything else keeps the generic pipeline path.
        Returns :attr:`engine`.

        Example:
            >>> rt.compile(pd.read_parquet("bundle/reference.parquet"))
            'onnxruntime'
        """
        self.plan, self._estimator, self.onnx, self.onnx_max_diff = None, None, None, None
        self.onnx_checked = None
        plan = compile_plan(
            self.model,
            self.input_schema,
            self.meta.unseen_category,
            self.ranges,
            self.out_of_range,
        )
        if plan is None:
            return self.engine
        frames = [self.validate_records([self._synthetic_row()])]
        if sample is not None and len(sample):
            checked = self.check_rows(sample.head(CHECK_ROWS).reset_index(drop=True))
            if len(checked.frame):
                frames.append(checked.frame)
        try:
            with _sklearn_quiet():
                for frame in frames:
                    expected = np.asarray(self.model[:-1].transform(frame), dtype=np.float64)
                    if not same_matrix(plan.encode_frame(frame), expected):
                        logger.warning("compiled preprocessing disagrees; using the pipeline")
                        return self.engine
        except Exception as exc:
            logger.warning("cannot check the compiled preprocessing (%s); using the pipeline", exc)
            return self.engine
        self.plan, self._estimator = plan, self.model.steps[-1][1]
        if onnx and self.bundle_dir is not None:
            self.onnx = self._checked_onnx(OnnxModel.load(Bundle(self.bundle_dir)), frames)
            self.onnx_checked = "load" if self.onnx is not None else None
        return self.engine

    def _checked_onnx(self, model: OnnxModel | None, frames: list[pd.DataFrame]) -> Any:
        if model is None or self.plan is None:
            return None
        worst = 0.0
        try:
            for frame in frames:
                matrix = self.plan.encode_frame(frame)
                if self.is_classifier:
                    ours = model.predict_proba(matrix)
                    theirs = self.estimator.predict_proba(matrix)
                else:
                    ours, theirs = model.predict(matrix), self.estimator.predict(matrix)
                diff = float(np.max(np.abs(ours - np.asarray(theirs, dtype=np.float64))))
                if not diff <= ONNX_TOLERANCE:
                    logger.warning("ONNX export differs by %.3g; using scikit-learn", diff)
                    return None
                worst = max(worst, diff)
        except Exception as exc:
            logger.warning("ONNX export failed its load check (%s); using scikit-learn", exc)
            return None
        self.onnx_max_diff = worst
        return model

    def _synthetic_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for col in self.input_schema.columns:
            if col.kind == "numeric":
                low, high = col.min, col.max
                if low is not None and high is not None:
                    row[col.name] = (low + high) / 2
                else:  # inside a one-sided range too: a reject policy must not refuse it
                    row[col.name] = low if low is not None else high if high is not None else 0.0
            elif col.kind == "boolean":
                row[col.name] = False
            elif col.kind == "datetime":
                row[col.name] = "2000-01-01T00:00:00"
            else:
                row[col.name] = col.categories[0] if col.categories else "x"
        return row

    def warm_up(self) -> None:
        """Predict one synthetic row so imports and caches are paid before traffic."""
        row = self._synthetic_row()
        started = time.perf_counter()
        try:
            self.predict(self.validate_records([row]))
            matrix = self.encode_records([row])
            if matrix is not None:
                self.predict_matrix(matrix)
        except Exception as exc:
            # A synthetic row may miss a hidden assumption of a custom pipeline;
            # real rows still get their own checks, so a warning is enough.
            logger.warning("warm-up prediction for model '%s' failed: %s", self.meta.name, exc)
            return
        logger.debug("warm-up took %.1f ms", (time.perf_counter() - started) * 1e3)

    # --- prediction -----------------------------------------------------------------

    def encode_records(
        self, rows: Sequence[Any], outside: list[Outside] | None = None
    ) -> np.ndarray | None:
        """The estimator's input matrix for clean records; ``None``: use :meth:`validate_records`.

        Under the flag policy a number outside its training range is encoded and,
        when ``outside`` is given, reported there as ``(row, feature, value)``;
        under reject such a row makes it ``None`` (the generic path refuses it).

        Example:
            >>> X = rt.encode_records(rows)
            >>> labels, proba = rt.predict_matrix(X) if X is not None else rt.predict_arrays(
            ...     rt.validate_records(rows))
        """
        return None if self.plan is None else self.plan.encode_records(rows, outside)

    def frame_outside(self, frame: pd.DataFrame) -> list[Outside]:
        """Values of a validated frame outside their training range: ``(row, feature, value)``.

        Empty under the reject policy (validation refused such rows already).

        Example:
            >>> rt.frame_outside(rt.validate_records([{"month": 99, ...}]))
            [(0, 'month', 99)]
        """
        if not self.ranges or self.out_of_range == "reject":
            return []
        return frame_outside(frame, self.ranges)

    def range_warnings(self, rows: int, outside: Sequence[Outside]) -> list[list[dict[str, Any]]]:
        """One list of warnings per row (empty when in range), naming column, value and range.

        Example:
            >>> rt.range_warnings(1, [(0, "month", 99)])[0][0]["max"]
            12.0
        """
        return row_warnings(rows, outside, self.ranges)

    def predict_matrix(
        self, matrix: np.ndarray, *, onnx: bool = True
    ) -> tuple[list[Any], np.ndarray | None]:
        """Predict an encoded matrix (from :meth:`encode_records`); like :meth:`predict_arrays`.

        ``onnx=False`` runs the scikit-learn estimator even when an ONNX export is loaded.
        """
        assert self.plan is not None, "predict_matrix needs a compiled runtime"
        rows = len(matrix)
        if onnx and self.onnx is not None:
            if not self.is_classifier:
                values = self.onnx.predict(matrix)
                check_rows_out(values, rows)
                return values.tolist(), None
            raw = self.onnx.predict_proba(matrix)
        else:
            estimator = self.estimator  # first use of a lazy runtime unpickles it here
            with self._threads(rows), _sklearn_quiet():
                if not self.is_classifier:
                    values = np.asarray(estimator.predict(matrix), dtype=np.float64)
                    values = values.reshape(-1)
                    check_rows_out(values, rows)
                    return values.tolist(), None
                raw = np.asarray(estimator.predict_proba(matrix), dtype=np.float64)
        check_rows_out(raw, rows)
        return self._labelled(raw)

    def _labelled(self, raw: np.ndarray) -> tuple[list[Any], np.ndarray]:
        assert self.order is not None and self.classes is not None
        proba = raw[:, self.order]
        labels = self.classes
        threshold = self.decision_threshold
        if threshold is None:
            return [labels[i] for i in proba.argmax(axis=1).tolist()], proba
        positive, negative = labels[self._positive_index], labels[self._negative_index]
        chances = proba[:, self._positive_index].tolist()
        return [positive if p >= threshold else negative for p in chances], proba

    def class_indices(self, proba: np.ndarray) -> np.ndarray:
        """The label of each row as its index in ``classes``, from probabilities in that order.

        The most probable class, or for a binary bundle with a decision threshold
        (the benefit matrix's, see :class:`~mlcycle.artifacts.BundleMeta`) the
        positive class when ``P(positive) ≥ threshold``: what :meth:`predict` labels.

        Example:
            >>> rt.meta.decision_threshold, rt.class_indices(np.array([[0.7, 0.3]])).tolist()
            (0.2, [1])
        """
        if self.decision_threshold is None:
            return proba.argmax(axis=1)
        positive = self._positive_index
        return np.where(
            proba[:, positive] >= self.decision_threshold, positive, self._negative_index
        )

    def predict_arrays(self, df: pd.DataFrame) -> tuple[list[Any], np.ndarray | None]:
        """Predict a validated frame: (labels or values, probabilities or ``None``).

        Probabilities have one column per class in ``self.classes`` order;
        labels are the most probable class (binary with a decision threshold:
        positive when ``P(positive) ≥ threshold``), as plain Python values.
        """
        if self.plan is not None:
            return self.predict_matrix(self.plan.encode_frame(df))
        model = self.model
        with self._threads(len(df)), _sklearn_quiet():
            if not self.is_classifier:
                values = np.asarray(model.predict(df), dtype=np.float64).reshape(-1)
                check_rows_out(values, len(df))
                return values.tolist(), None
            raw = np.asarray(model.predict_proba(df), dtype=np.float64)
        check_rows_out(raw, len(df))
        return self._labelled(raw)

    def predict(self, df: pd.DataFrame) -> dict[str, Any]:
        """Predict a frame from :meth:`validate_frame` / :meth:`validate_records`.

        Returns ``{"predictions": [...]}`` plus, for classifiers,
        ``"probabilities"`` (one list per row, columns in ``"classes"`` order)
        and ``"classes"``.

        Example:
            >>> rt.predict(rt.validate_records(rows))
            {'predictions': [False], 'probabilities': [[0.91, 0.09]], 'classes': [False, True]}
        """
        labels, proba = self.predict_arrays(df)
        if proba is None:
            return {"predictions": labels}
        return {
            "predictions": labels,
            "probabilities": proba.tolist(),
            "classes": list(self.classes or []),
        }

    def _threads(self, rows: int) -> Any:
        if self._omp is None or rows >= SINGLE_THREAD_ROWS:
            return nullcontext()
        return self._omp.limit(limits=1)
