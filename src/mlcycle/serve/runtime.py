"""The in-process model runtime: load a bundle folder, check inputs, predict.

Everything that serves predictions (the REST app, the batch job, an embedding
program) goes through :class:`ModelRuntime`, so the data contract is enforced
in one place. Inputs are checked against the bundle's ``schema.json`` (the same
contract the data stage froze, via :func:`mlcycle.schema.check_frame`), coerced
to the dtypes a training frame has, and only then handed to the fitted
pipeline, so no input can make the model itself fail.

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

import decimal
import logging
import math
import numbers
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import pandas as pd
import sklearn
from pydantic import ValidationError

from mlcycle.artifacts import BundleMeta
from mlcycle.errors import BadInput, NotFound
from mlcycle.schema import ColumnSchema, Schema, Violation, check_frame

logger = logging.getLogger("mlcycle.serve")

TASKS = ("binary", "multiclass", "regression")
# Below this many rows a prediction runs on one OpenMP thread: waking the pool
# costs more than the work (HistGradientBoosting: ~0.4 ms vs 0.5-4 ms per row).
SINGLE_THREAD_ROWS = 512
_MAX_EXAMPLES = 5

Detail = dict[str, Any]


class InputError(BadInput):
    """Input rows break the model's data contract; ``details`` names each bad field.

    Example:
        >>> try:
        ...     rt.validate_records([{"distance": "far"}])
        ... except InputError as exc:
        ...     exc.details[0]
        {'field': 'carrier', 'error': "column 'carrier' (categorical) is missing"}
    """

    def __init__(
        self,
        details: list[Detail],
        what: str = "the input does not match the model's data contract",
        why: str = "",
        fix: str = "",
    ) -> None:
        self.details = details
        if not why:
            why = "; ".join(str(d["error"]) for d in details[:3])
            if len(details) > 3:
                why += f"; and {len(details) - 3} more problem(s)"
        if not fix:
            fix = "fix the fields named in details (GET /v2/models/{name} lists the inputs)"
        super().__init__(what, why, fix)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "details": self.details}


@dataclass(frozen=True)
class RowCheck:
    """Result of :meth:`ModelRuntime.check_rows`: good rows to predict, bad rows with reasons.

    ``frame`` holds the valid rows only (coerced, fresh ``RangeIndex``);
    ``rejected`` is a boolean mask over the input rows; ``reasons`` has one
    text per rejected row, in input order.
    """

    frame: pd.DataFrame
    rejected: np.ndarray
    reasons: list[str]


@dataclass
class _Problem:
    """One field's bad rows: positions, the offending values, and what was wrong."""

    field: str
    check: Literal["type", "null", "category"]
    rows: np.ndarray
    values: list[Any]
    expected: str = ""

    def reason(self, i: int) -> str:
        """Short per-row text, for a batch reject file."""
        value = _show(self.values[i])
        if self.check == "type":
            return f"{self.field}: expected {self.expected}, got {value}"
        if self.check == "null":
            return f"{self.field}: null, but the contract says it is never null"
        return f"{self.field}: unseen category {value}"

    def message(self, total: int) -> str:
        """Per-field text summarising every bad row, for an HTTP 422."""
        count = len(self.rows)
        where = _rows_text(self.rows, total)
        if self.check == "type":
            shown = ", ".join(_show(v) for v in _distinct(self.values))
            return f"'{self.field}' should be {self.expected} but got {shown} ({where})"
        if self.check == "null":
            return f"'{self.field}' is null in {count} row(s) ({where}) but it may never be null"
        shown = ", ".join(_show(v) for v in _distinct(self.values))
        noun = "category" if count == 1 else "categories"
        return f"'{self.field}' has {count} unseen {noun} ({where}): {shown}"


class ModelRuntime:
    """A loaded model bundle, ready to check inputs and predict.

    Attributes: ``meta`` (:class:`BundleMeta`), ``schema`` (the bundle's full
    :class:`Schema`), ``input_schema`` (just the model's features, in order),
    ``version``, ``model`` (the fitted pipeline), ``classes`` (labels in
    ``meta.classes`` order; ``None`` for regression).

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
    ) -> None:
        if meta.task not in TASKS:
            raise BadInput(
                f"model '{meta.name}' has unknown task '{meta.task}'",
                f"meta.json must say one of: {', '.join(TASKS)}",
                "re-register the model with this version of mlcycle",
            )
        self.model = model
        self.meta = meta
        self.schema = schema
        self.version = version
        self.bundle_dir = bundle_dir
        self.input_schema = _input_schema(meta, schema)
        self.features = [c.name for c in self.input_schema.columns]
        self.is_classifier = meta.task != "regression"
        self._order: np.ndarray | None = None
        self.classes: list[Any] | None = None
        if self.is_classifier:
            self._order, self.classes = _class_order(model, meta)
        self.positive_label: Any = None
        self.positive_index: int | None = None
        if meta.task == "binary" and self.classes is not None:
            self.positive_index = _positive_index(meta, self.classes)
            self.positive_label = self.classes[self.positive_index]
        _check_model_inputs(model, meta, self.features)
        self._omp = _openmp_controller()

    # --- loading --------------------------------------------------------------------

    @classmethod
    def load(
        cls, bundle_dir: Path | str, version: int | None = None, *, warmup: bool = True
    ) -> ModelRuntime:
        """Load a bundle folder (``model.joblib``, ``meta.json``, ``schema.json``).

        Raises :class:`NotFound` when the folder or a file is missing and
        :class:`BadInput` when one cannot be read. With ``warmup`` one
        synthetic row is predicted so the first real request pays no
        first-call costs.

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
                "a bundle is a folder with model.joblib, meta.json and schema.json",
                "pass the bundle folder, not a file inside it",
            )
        meta = _read_model(folder / "meta.json", BundleMeta)
        schema = _read_model(folder / "schema.json", Schema)
        model = _read_joblib(folder / "model.joblib")
        runtime = cls(model, meta, schema, version=version, bundle_dir=folder)
        if warmup:
            runtime.warm_up()
        return runtime

    def warm_up(self) -> None:
        """Predict one synthetic row so imports and caches are paid before traffic."""
        row: dict[str, Any] = {}
        for col in self.input_schema.columns:
            if col.kind == "numeric":
                low, high = col.min, col.max
                row[col.name] = (low + high) / 2 if low is not None and high is not None else 0.0
            elif col.kind == "boolean":
                row[col.name] = False
            elif col.kind == "datetime":
                row[col.name] = "2000-01-01T00:00:00"
            else:
                row[col.name] = col.categories[0] if col.categories else "x"
        started = time.perf_counter()
        try:
            self.predict(self.validate_records([row]))
        except Exception as exc:
            # A synthetic row may miss a hidden assumption of a custom pipeline;
            # real rows still get their own checks, so a warning is enough.
            logger.warning("warm-up prediction for model '%s' failed: %s", self.meta.name, exc)
            return
        logger.debug("warm-up took %.1f ms", (time.perf_counter() - started) * 1e3)

    # --- input checks ---------------------------------------------------------------

    def validate_records(self, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Check JSON-like records and return the model's input frame.

        A key missing from every record is a missing column; missing from
        some records it is a null. Extra keys are ignored. Raises
        :class:`InputError` listing every bad field.

        Example:
            >>> rt.validate_records([{"dep_delay": None, "distance": 200, "carrier": "AA"}])
        """
        present: set[str] = set()
        for row in rows:
            if not isinstance(row, Mapping):
                raise InputError(
                    [{"field": None, "error": f"each record must be an object, got {_show(row)}"}],
                    what="a record is not a JSON object",
                )
            present.update(row.keys())
        columns = {
            name: [row.get(name) for row in rows] for name in self.features if name in present
        }
        return self.validate_columns(columns, len(rows))

    def validate_columns(
        self, columns: Mapping[str, Sequence[Any]], rows: int | None = None
    ) -> pd.DataFrame:
        """Check columnar input (name → values) and return the model's input frame.

        Example:
            >>> rt.validate_columns({"distance": [200, 300], "carrier": ["AA", "DL"], ...})
        """
        lengths = {name: len(columns[name]) for name in self.features if name in columns}
        if rows is None:
            rows = next(iter(lengths.values()), 0)
        uneven = {name: n for name, n in lengths.items() if n != rows}
        if uneven:
            raise InputError(
                [
                    {"field": name, "error": f"'{name}' has {n} value(s) but the batch has {rows}"}
                    for name, n in uneven.items()
                ],
                what="input columns have different lengths",
            )
        frame, problems = self._coerce_all(columns, rows, from_text=False)
        return self._finish(frame, problems)

    def validate_frame(self, df: pd.DataFrame, *, from_text: bool = False) -> pd.DataFrame:
        """Check a DataFrame and return the model's input frame (features only, in order).

        ``from_text`` parses text cells (numbers, true/false) as a CSV reader
        would; otherwise a string in a numeric column is an error.

        Example:
            >>> X = rt.validate_frame(pd.read_parquet("new_flights.parquet"))
        """
        frame, problems = self._coerce_all(_frame_columns(df), len(df), from_text=from_text)
        return self._finish(frame, problems)

    def check_rows(self, df: pd.DataFrame, *, from_text: bool = False) -> RowCheck:
        """Split a frame into valid rows (coerced) and rejected rows with reasons.

        A missing column still raises :class:`InputError`: no row can be
        predicted without it. Used by the batch job.

        Example:
            >>> check = rt.check_rows(chunk)
            >>> check.reasons[:1]
            ["carrier: unseen category 'ZZ'"]
        """
        n = len(df)
        frame, bad = self._coerce_all(_frame_columns(df), n, from_text=from_text)
        problems = self._row_problems(frame, bad)
        rejected = np.zeros(n, dtype=bool)
        per_row: dict[int, list[str]] = {}
        for problem in problems:
            rejected[problem.rows] = True
            for i, row in enumerate(problem.rows.tolist()):
                per_row.setdefault(row, []).append(problem.reason(i))
        reasons = ["; ".join(per_row[i]) for i in np.flatnonzero(rejected).tolist()]
        good = frame if not rejected.any() else frame.loc[~rejected].reset_index(drop=True)
        if len(good):
            errors = self._contract_errors(good)
            if errors:
                # Only reachable if the shared contract grows a check this module
                # does not know row by row; refuse rather than predict on it.
                raise InputError([{"field": v.column, "error": v.message} for v in errors])
        return RowCheck(frame=good, rejected=rejected, reasons=reasons)

    def _coerce_all(
        self, columns: Mapping[str, Any], rows: int, *, from_text: bool
    ) -> tuple[pd.DataFrame, dict[str, _Problem]]:
        """Coerce every feature to its kind; wrong-typed cells become null and are reported."""
        if rows == 0:
            raise InputError(
                [{"field": None, "error": "the batch has no rows"}],
                what="empty batch",
                why="there is nothing to predict",
                fix="send at least one row",
            )
        missing = [c for c in self.input_schema.columns if c.name not in columns]
        if missing:
            raise InputError(
                [
                    {"field": c.name, "error": f"column '{c.name}' ({c.kind}) is missing"}
                    for c in missing
                ],
                what=f"missing input column(s): {', '.join(c.name for c in missing)}",
                fix=f"send every feature the model needs: {', '.join(self.features)}",
            )
        out: dict[str, Any] = {}
        bad: dict[str, _Problem] = {}
        for col in self.input_schema.columns:
            values, mask, bad_values = _coerce(columns[col.name], col, from_text)
            out[col.name] = values
            if mask.any():
                bad[col.name] = _Problem(
                    col.name, "type", np.flatnonzero(mask), bad_values, _EXPECTED[col.kind]
                )
        return pd.DataFrame(out, index=pd.RangeIndex(rows)), bad

    def _row_problems(self, frame: pd.DataFrame, bad: dict[str, _Problem]) -> list[_Problem]:
        """Type, null and unseen-category problems of each row, field by field."""
        problems: list[_Problem] = []
        reject_unseen = self.meta.unseen_category == "reject"
        for col in self.input_schema.columns:
            typed = bad.get(col.name)
            if typed is not None:
                problems.append(typed)
            series = frame[col.name]
            nulls = series.isna().to_numpy().copy()
            if typed is not None:
                nulls[typed.rows] = False
            if not col.nullable and nulls.any():
                rows = np.flatnonzero(nulls)
                problems.append(_Problem(col.name, "null", rows, [None] * len(rows)))
            if reject_unseen and col.categories is not None and col.kind in _TEXT_KINDS:
                unseen = ~series.isin(col.categories).to_numpy() & ~series.isna().to_numpy()
                if unseen.any():
                    rows = np.flatnonzero(unseen)
                    problems.append(
                        _Problem(col.name, "category", rows, series.iloc[rows].tolist())
                    )
        return problems

    def _finish(self, frame: pd.DataFrame, bad: dict[str, _Problem]) -> pd.DataFrame:
        """Let the shared contract decide; on any error explain it row by row."""
        errors = self._contract_errors(frame)
        if not bad and not errors:
            return frame
        by_field: dict[str | None, list[str]] = {}
        for p in self._row_problems(frame, bad):
            by_field.setdefault(p.field, []).append(p.message(len(frame)))
        for v in errors:
            # A contract error this module cannot pin to rows: pass its own words on.
            if v.column not in by_field:
                by_field.setdefault(v.column, []).append(v.message)
        raise InputError(
            [{"field": f, "error": "; ".join(msgs)} for f, msgs in by_field.items()],
            what=f"invalid value(s) in: {', '.join(str(f) for f in by_field)}",
        )

    def _contract_errors(self, frame: pd.DataFrame) -> list[Violation]:
        """The shared contract check (:func:`check_frame`) on coerced rows."""
        violations = check_frame(
            frame,
            self.input_schema,
            roles=("feature",),
            ranges=False,
            unseen_is_error=self.meta.unseen_category == "reject",
        )
        # Uniqueness describes a dataset, not a request: a batch may repeat values.
        return [v for v in violations if v.severity == "error" and v.check != "unique"]

    # --- prediction -----------------------------------------------------------------

    def predict_arrays(self, df: pd.DataFrame) -> tuple[list[Any], np.ndarray | None]:
        """Predict a validated frame: (labels or values, probabilities or ``None``).

        Probabilities have one column per class in ``self.classes`` order;
        labels are the most probable class, as plain Python values.
        """
        with self._threads(len(df)), sklearn.config_context(skip_parameter_validation=True):
            if not self.is_classifier:
                values = np.asarray(self.model.predict(df), dtype=np.float64).reshape(-1)
                _check_rows_out(values, len(df))
                return values.tolist(), None
            raw = np.asarray(self.model.predict_proba(df), dtype=np.float64)
        _check_rows_out(raw, len(df))
        assert self._order is not None and self.classes is not None
        proba = raw[:, self._order]
        labels = self.classes
        return [labels[i] for i in proba.argmax(axis=1).tolist()], proba

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


# --- loading helpers ----------------------------------------------------------------


def _read_model(path: Path, model: type[Any]) -> Any:
    if not path.is_file():
        raise NotFound(
            f"{path.name} not found in model bundle {path.parent}",
            "a bundle folder holds model.joblib, meta.json and schema.json",
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


def _read_joblib(path: Path) -> Any:
    if not path.is_file():
        raise NotFound(
            f"model.joblib not found in model bundle {path.parent}",
            "a bundle folder holds model.joblib, meta.json and schema.json",
            "re-register the model, or pass the right bundle folder",
        )
    try:
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


def _input_schema(meta: BundleMeta, schema: Schema) -> Schema:
    """The contract of exactly the model's features, in the model's order.

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


def _class_order(model: Any, meta: BundleMeta) -> tuple[np.ndarray, list[Any]]:
    """Map ``meta.classes`` to the columns of the model's ``predict_proba``."""
    fitted = getattr(model, "classes_", None)
    if fitted is None or not hasattr(model, "predict_proba"):
        raise BadInput(
            f"model '{meta.name}' is a {meta.task} classifier without predict_proba/classes_",
            "serving returns class probabilities",
            "register a classifier that implements predict_proba",
        )
    fitted_list = np.asarray(fitted).tolist()
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


def _positive_index(meta: BundleMeta, classes: list[Any]) -> int:
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


def _check_model_inputs(model: Any, meta: BundleMeta, features: list[str]) -> None:
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and list(fitted) != features:
        raise BadInput(
            f"model '{meta.name}' was fitted on columns {list(fitted)} "
            f"but meta.json lists features {features}",
            "the model would receive columns in the wrong order",
            "re-register the model",
        )


def _openmp_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a scikit-learn dependency, normally there
        return None
    controller = ThreadpoolController().select(user_api="openmp")
    return controller if controller.lib_controllers else None


def _check_rows_out(values: np.ndarray, rows: int) -> None:
    if values.shape[0] != rows:
        raise RuntimeError(f"the model returned {values.shape[0]} rows for {rows} inputs")


# --- coercion -----------------------------------------------------------------------

_TEXT_KINDS = ("categorical", "string")
_EXPECTED = {
    "numeric": "a finite number",
    "boolean": "true or false",
    "categorical": "a string",
    "string": "a string",
    "datetime": "an ISO 8601 date-time",
}
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _frame_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    if not df.columns.is_unique:
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise InputError(
            [{"field": c, "error": f"column '{c}' appears more than once"} for c in dupes],
            what="duplicate input columns",
        )
    return {str(name): df[name] for name in df.columns}


def _is_null(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float | np.floating) and math.isnan(v)


def _coerce(data: Any, col: ColumnSchema, from_text: bool) -> tuple[Any, np.ndarray, list[Any]]:
    """Coerce one column to its kind: (values, bad-row mask, the bad values)."""
    if isinstance(data, pd.Series):
        fast = _coerce_series(data, col.kind, from_text)
        if fast is not None:
            return fast
        data = data.astype(object).tolist()
    elif not isinstance(data, list):
        data = list(data)
    if col.kind == "numeric":
        return _numbers(data, from_text)
    if col.kind == "boolean":
        return _booleans(data, from_text)
    if col.kind == "datetime":
        return _datetimes(data)
    return _texts(data)


def _coerce_series(
    s: pd.Series, kind: str, from_text: bool
) -> tuple[Any, np.ndarray, list[Any]] | None:
    """Vectorised paths for typed columns; ``None`` means use the per-value path."""
    dtype = s.dtype
    n = len(s)
    no_bad = np.zeros(n, dtype=bool)
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
        return None
    is_bool = pd.api.types.is_bool_dtype(dtype)
    is_number = (
        pd.api.types.is_numeric_dtype(dtype)
        and not is_bool
        and not pd.api.types.is_complex_dtype(dtype)
    )
    is_text = isinstance(dtype, pd.StringDtype)
    if kind == "numeric":
        if is_number:
            values = s.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.isinf(values)
            return np.where(bad, np.nan, values), bad, values[bad].tolist()
        if is_text and from_text:
            parsed = pd.to_numeric(s.str.strip(), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad = (s.notna().to_numpy() & np.isnan(parsed)) | np.isinf(parsed)
            return np.where(bad, np.nan, parsed), bad, s[bad].tolist()
        return None
    if kind in _TEXT_KINDS:
        if is_text:
            return s.astype("str").reset_index(drop=True), no_bad, []
        if pd.api.types.is_integer_dtype(dtype) and not s.isna().any():
            return s.astype("str").reset_index(drop=True), no_bad, []
        return None
    if kind == "boolean" and is_bool and not s.isna().any():
        return s.to_numpy(dtype=bool), no_bad, []
    if kind == "datetime" and pd.api.types.is_datetime64_any_dtype(dtype):
        if isinstance(dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.reset_index(drop=True), no_bad, []
    return None


def _numbers(values: list[Any], from_text: bool) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    n = len(values)
    if set(map(type, values)) <= {int, float, type(None)}:
        try:
            arr = np.array(values, dtype=np.float64)
        except OverflowError:
            pass
        else:
            bad = np.isinf(arr)
            if not bad.any():
                return arr, bad, []
    arr = np.empty(n, dtype=np.float64)
    bad = np.zeros(n, dtype=bool)
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        number: float | None = None
        if _is_null(v):
            number = math.nan
        elif isinstance(v, bool | np.bool_):
            number = None
        elif isinstance(v, numbers.Real | decimal.Decimal):
            # Decimal: what a Parquet decimal column becomes in pandas.
            try:
                number = float(v)
            except (OverflowError, ValueError):
                number = None
        elif from_text and isinstance(v, str):
            try:
                number = float(v.strip())
            except ValueError:
                number = None
        if number is None or math.isinf(number):
            bad[i] = True
            bad_values.append(v)
            number = math.nan
        arr[i] = number
    return arr, bad, bad_values


def _booleans(values: list[Any], from_text: bool) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    n = len(values)
    arr = np.full(n, np.nan, dtype=np.float64)
    bad = np.zeros(n, dtype=bool)
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        if _is_null(v):
            continue
        flag: bool | None = None
        if isinstance(v, bool | np.bool_) or (isinstance(v, numbers.Real) and v in (0, 1)):
            flag = bool(v)
        elif from_text and isinstance(v, str):
            text = v.strip().lower()
            flag = True if text in _TRUE else False if text in _FALSE else None
        if flag is None:
            bad[i] = True
            bad_values.append(v)
        else:
            arr[i] = 1.0 if flag else 0.0
    if np.isnan(arr).any():
        return arr, bad, bad_values
    return arr.astype(bool), bad, bad_values


def _texts(values: list[Any]) -> tuple[pd.Series, np.ndarray, list[Any]]:
    n = len(values)
    bad = np.zeros(n, dtype=bool)
    if set(map(type, values)) <= {str, type(None)}:
        return pd.Series(values, dtype="str"), bad, []
    out: list[Any] = [None] * n
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        if _is_null(v):
            continue
        if isinstance(v, str):
            out[i] = str(v)
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_):
            # int-coded categories (zip codes, airport ids) arrive as numbers.
            out[i] = str(int(v))
        elif isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer():
            out[i] = str(int(v))
        else:
            bad[i] = True
            bad_values.append(v)
    return pd.Series(out, dtype="str"), bad, bad_values


def _datetimes(values: list[Any]) -> tuple[pd.Series, np.ndarray, list[Any]]:
    n = len(values)
    out: list[Any] = [pd.NaT] * n
    bad = np.zeros(n, dtype=bool)
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        if _is_null(v):
            continue
        stamp: pd.Timestamp | None = None
        if isinstance(v, str | datetime | np.datetime64):
            try:
                stamp = pd.Timestamp(v)
            except (ValueError, TypeError, OverflowError):
                stamp = None
        if stamp is None or stamp is pd.NaT:
            bad[i] = True
            bad_values.append(v)
            continue
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        out[i] = stamp
    return pd.Series(pd.to_datetime(out)), bad, bad_values


# --- messages -----------------------------------------------------------------------


def _show(v: Any) -> str:
    if v is None:
        return "null"
    text = repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= 40 else text[:37] + "..."


def _distinct(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    keys: set[str] = set()
    for v in values:
        key = _show(v)
        if key not in keys:
            keys.add(key)
            seen.append(v)
        if len(seen) >= _MAX_EXAMPLES:
            break
    return seen


def _rows_text(rows: np.ndarray, total: int) -> str:
    if total == 1:
        return "row 0"
    shown = ", ".join(str(r) for r in rows[:_MAX_EXAMPLES].tolist())
    more = f" and {len(rows) - _MAX_EXAMPLES} more" if len(rows) > _MAX_EXAMPLES else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"
