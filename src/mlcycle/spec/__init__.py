"""``mlcycle.yaml`` as pydantic models.

Unknown keys are refused (a misspelled key is the most common spec bug), and
every validation error names the key path, the bad value and what is allowed.

Example:
    >>> spec = Spec.load("mlcycle.yaml")
    >>> spec.problem.target
    'delayed'
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mlcycle.errors import BadInput
from mlcycle.spec.base import LOWER_IS_BETTER, METRICS_BY_TASK, SpecModel, Task
from mlcycle.spec.evaluate import LearningCurve
from mlcycle.spec.loop import Loop
from mlcycle.spec.monitor import AlertRule, AlertSinks, Monitor
from mlcycle.spec.train import (
    Candidate,
    CrossValidation,
    Directional,
    Invariance,
    MinimumCase,
    ModelTests,
    SearchParam,
    Train,
    Tuning,
)

# gates.thresholds may name this besides the task's metrics: the candidate's mean
# benefit per holdout row under problem.benefit (binary only).
BENEFIT_GATE = "benefit"


class Benefit(SpecModel):
    """Value of each outcome of a binary decision (e.g. money)."""

    tp: float = 0.0
    tn: float = 0.0
    fp: float = 0.0
    fn: float = 0.0


class Problem(SpecModel):
    task: Task
    target: str
    positive_label: str | int | bool | None = None
    id_column: str | None = None
    timestamp_column: str | None = None
    primary_metric: str | None = None
    benefit: Benefit | None = None
    latency_budget_ms: float = Field(default=50.0, gt=0)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> Problem:
        allowed = METRICS_BY_TASK[self.task]
        if self.primary_metric is not None and self.primary_metric not in allowed:
            raise ValueError(
                f"primary_metric '{self.primary_metric}' is not a {self.task} metric; "
                f"allowed: {', '.join(allowed)}"
            )
        return self

    @property
    def metric(self) -> str:
        """The primary metric, defaulting by task."""
        return self.primary_metric or METRICS_BY_TASK[self.task][0]


class Source(SpecModel):
    """Where the data comes from: a file, folder, glob or fsspec URL (Parquet/CSV,
    relative to the spec), or a ``sql`` query against a SQLAlchemy ``url``.

    With a ``watermark`` column each ingest reads only rows newer than the last
    one ingested (append mode); without it every ingest is a full snapshot.
    """

    path: str | None = None
    format: Literal["auto", "parquet", "csv"] = "auto"
    sql: str | None = None
    url: str | None = None
    name: str = Field(default="main", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    watermark: str | None = None
    on_bad_lines: Literal["error", "warn"] = "error"
    duplicates: Literal["drop", "error"] = "drop"
    retries: int = Field(default=3, ge=0, le=10)
    # The text encoding of CSV files (any Python codec name); Parquet and SQL ignore it.
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"unknown text encoding {value!r}; use a Python codec name such as utf-8, "
                "latin-1, cp1252 or utf-16"
            ) from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        if (self.path is None) == (self.sql is None):
            raise ValueError("set exactly one of 'path' (files) or 'sql' (a query, with 'url')")
        if self.sql is not None and not self.url:
            raise ValueError("a 'sql' source needs 'url', a SQLAlchemy URL such as sqlite:///db")
        if self.url is not None and self.sql is None:
            raise ValueError("'url' is only for a 'sql' source; files use 'path'")
        return self

    @property
    def shown(self) -> str:
        """The source as a person would name it (path, or the query)."""
        return self.path if self.path is not None else f"sql: {self.sql}"


class Features(SpecModel):
    """Which columns the model sees. Default: all but target, id and timestamp."""

    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    max_categories: int = Field(default=200, ge=2)
    seasonal: list[str] = Field(
        default_factory=list,
        description=(
            "calendar or seasonal feature columns (month, week, day of year): their values"
            " move past the training range with time by design, so the time-split range"
            " warning skips them and monitoring reports their drift without alerting on it"
        ),
    )


class Transform(SpecModel):
    """One transform step: DuckDB ``sql`` over the table ``raw`` (the previous
    step's output), or a Python ``function`` ``module:function`` (DataFrame → DataFrame)."""

    sql: str | None = None
    function: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

    @model_validator(mode="after")
    def _one_kind(self) -> Transform:
        if (self.sql is None) == (self.function is None):
            raise ValueError("set exactly one of 'sql' or 'function' (module:function)")
        return self


class Expectation(SpecModel):
    """A declared check on each new dataset version; ``error`` stops, ``warn`` is recorded."""

    check: Literal[
        "row_count", "null_rate", "range", "allowed", "unique", "freshness", "distribution"
    ]
    column: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[str | int | float | bool] | None = None
    max_age_days: float | None = Field(default=None, gt=0)
    threshold: float = Field(default=0.2, gt=0, description="distribution: max distance")
    severity: Literal["error", "warn"] = "error"

    @model_validator(mode="after")
    def _fits_check(self) -> Expectation:
        needs_column = ("null_rate", "range", "allowed", "unique", "freshness")
        if self.check in needs_column and not self.column:
            raise ValueError(f"check '{self.check}' needs 'column'")
        if self.check == "allowed" and not self.values:
            raise ValueError("check 'allowed' needs 'values'")
        if (
            self.check in ("row_count", "null_rate", "range")
            and self.min is None
            and (self.max is None)
        ):
            raise ValueError(f"check '{self.check}' needs 'min' and/or 'max'")
        if self.check == "freshness" and self.max_age_days is None:
            raise ValueError("check 'freshness' needs 'max_age_days'")
        return self


class Data(SpecModel):
    source: Source
    features: Features = Field(default_factory=Features)
    schema_file: str = "schema.yaml"
    transforms: list[Transform] = Field(default_factory=list)
    expectations: list[Expectation] = Field(default_factory=list)


class Split(SpecModel):
    """How rows are cut into train / valid / test.

    ``group`` keeps every row of one ``group_column`` value (a customer, a
    patient, a device) in one split, so a model is judged on entities it never
    saw, as it will be in production. With another strategy a ``group_column``
    only makes the split step report the values found in two splits.

    Example:
        >>> Split(strategy="group", group_column="customer_id").group_column
        'customer_id'
    """

    strategy: Literal["time", "random", "stratified", "group"] = "time"
    valid_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    group_column: str | None = Field(
        default=None,
        description="rows sharing this column's value share a split (strategy group); with "
        "another strategy, values found in two splits are reported",
    )

    @model_validator(mode="after")
    def _group_needs_column(self) -> Split:
        if self.strategy == "group" and not self.group_column:
            raise ValueError(
                "strategy 'group' needs group_column, the column whose rows must stay "
                "together (e.g. customer_id)"
            )
        return self


class Prepare(SpecModel):
    split: Split = Field(default_factory=Split)


class Champion(SpecModel):
    """How a candidate must compare with the current champion on the same rows."""

    mode: Literal["superiority", "non_inferiority"] = "non_inferiority"
    tolerance: float = Field(
        default=0.005, description="how much worse than the champion is still acceptable (≥ 0)"
    )
    slice_tolerance: float = Field(
        default=0.02, description="how much worse a judged slice may be than the champion's (≥ 0)"
    )

    @field_validator("tolerance", "slice_tolerance")
    @classmethod
    def _tolerance_is_positive(cls, value: float) -> float:
        if value < 0:
            raise ValueError(
                f"{value} is negative; a tolerance is how much *worse* than the champion a "
                f"candidate may be, written as a positive number: use {abs(value)}"
            )
        return value


class Gates(SpecModel):
    baseline_margin: float = Field(default=0.0, ge=0)
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="metric name → minimum (or maximum if lower is better)"
    )
    champion: Champion = Field(default_factory=Champion)
    infra_check: bool = Field(
        default=True, description="load the bundle in a fresh process and time single rows"
    )
    max_bundle_mb: float = Field(default=500.0, gt=0)


class EvaluateSection(SpecModel):
    """Holdout evaluation: bootstrap size, confidence level, declared slices."""

    bootstrap: int = Field(default=1000, ge=0, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    slices: list[str] = Field(default_factory=list, description="columns to slice the holdout by")
    min_slice_rows: int = Field(default=200, ge=1)
    max_slice_values: int = Field(default=50, ge=1)
    calibration_bins: int = Field(default=10, ge=2, le=100)
    learning_curve: LearningCurve = Field(
        default_factory=LearningCurve,
        description="train and validation score by training-set size, in the report",
    )


class Serve(SpecModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    unseen_category: Literal["reject", "unknown"] = "reject"
    out_of_range: Literal["flag", "reject"] = Field(
        default="flag",
        description=(
            "a numeric input outside its training range: flag = score it and warn"
            " (response, /metrics, prediction log); reject = refuse the row (422, batch rejects)"
        ),
    )
    max_body_bytes: int = Field(default=10_000_000, gt=0)
    native: bool = Field(
        default=True,
        description=(
            "compile a tree ensemble to native code when it is registered (needs"
            " mlcycle[native] and a C compiler; kept only when it reproduces scikit-learn);"
            " batch prediction scores through it"
        ),
    )


class Spec(SpecModel):
    project: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    problem: Problem
    data: Data
    prepare: Prepare = Field(default_factory=Prepare)
    train: Train = Field(default_factory=Train)
    gates: Gates = Field(default_factory=Gates)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
    serve: Serve = Field(default_factory=Serve)
    monitor: Monitor = Field(default_factory=Monitor)
    loop: Loop = Field(default_factory=Loop)

    @model_validator(mode="after")
    def _thresholds_fit_task(self) -> Spec:
        allowed = METRICS_BY_TASK[self.problem.task]
        for name in self.gates.thresholds:
            if name == BENEFIT_GATE:
                # The benefit per row exists only where the evaluation can compute it.
                if self.problem.task != "binary" or self.problem.benefit is None:
                    raise ValueError(
                        "gates.thresholds names 'benefit', which needs a binary problem with "
                        "a problem.benefit matrix ({tp, tn, fp, fn}); add one or drop the gate"
                    )
                continue
            if name not in allowed:
                raise ValueError(
                    f"gates.thresholds names '{name}', which a {self.problem.task} model "
                    f"does not have; allowed: {', '.join(allowed)}"
                )
        return self

    # --- loading -----------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Spec:
        """Read and validate a spec file; raise :class:`BadInput` naming the bad key."""
        path = Path(path)
        if not path.is_file():
            raise BadInput(
                f"spec file {path} not found",
                "mlcycle reads the project from a mlcycle.yaml file",
                "run `mlcycle init DIR --example flights` or pass --spec PATH",
            )
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise BadInput(
                f"{path} is not valid YAML", str(exc).replace("\n", " "), "fix the syntax"
            ) from exc
        if not isinstance(raw, dict):
            raise BadInput(
                f"{path} does not hold a mapping",
                "the spec must be a YAML mapping with keys project, problem, data, ...",
                "see the README for an example spec",
            )
        return cls.from_dict(raw, origin=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], origin: str = "spec") -> Spec:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise BadInput(
                f"{origin} is invalid",
                "; ".join(_describe(err) for err in exc.errors()),
                "fix the keys named above (see README: 'The spec')",
            ) from None

    def section_hash(self, *sections: str) -> str:
        """A stable hash of some top-level sections, for cache keys."""
        payload = {s: self.model_dump(mode="json")[s] for s in sections}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def hash(self) -> str:
        return hashlib.sha256(
            json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        ).hexdigest()


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(err["loc"][:-1])
        allowed = sorted(parent.model_fields) if parent else []
        guess = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        return f"unknown key '{loc}'{hint}; allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return f"missing key '{loc}'"
    value = err.get("input")
    shown = json.dumps(value, default=str)[:80] if value is not None else "null"
    msg = err["msg"].removeprefix("Value error, ")
    return f"'{loc or 'spec'}' = {shown}: {msg}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Follow a validation-error path through the spec models to the model at its end."""
    model: type[BaseModel] = Spec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            inner = [a for c in candidates for a in getattr(c, "__args__", ())]
            nested = [c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


__all__ = [
    "BENEFIT_GATE",
    "LOWER_IS_BETTER",
    "METRICS_BY_TASK",
    "AlertRule",
    "AlertSinks",
    "Benefit",
    "Candidate",
    "Champion",
    "CrossValidation",
    "Data",
    "Directional",
    "EvaluateSection",
    "Expectation",
    "Features",
    "Gates",
    "Invariance",
    "LearningCurve",
    "Loop",
    "MinimumCase",
    "ModelTests",
    "Monitor",
    "Prepare",
    "Problem",
    "SearchParam",
    "Serve",
    "Source",
    "Spec",
    "SpecModel",
    "Split",
    "Task",
    "Train",
    "Transform",
    "Tuning",
]
