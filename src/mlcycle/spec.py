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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlcycle.errors import BadInput

Task = Literal["binary", "multiclass", "regression"]

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "log_loss", "brier", "f1", "accuracy"),
    "multiclass": ("accuracy", "f1_macro", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
# Metrics where a smaller value is better; the gate needs the direction.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Benefit(_Model):
    """Value of each outcome of a binary decision (e.g. money)."""

    tp: float = 0.0
    tn: float = 0.0
    fp: float = 0.0
    fn: float = 0.0


class Problem(_Model):
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


class Source(_Model):
    """Where the data comes from: a file (Parquet/CSV) relative to the spec."""

    path: str
    format: Literal["auto", "parquet", "csv"] = "auto"


class Features(_Model):
    """Which columns the model sees. Default: all but target, id and timestamp."""

    include: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    max_categories: int = Field(default=200, ge=2)


class Data(_Model):
    source: Source
    features: Features = Field(default_factory=Features)
    schema_file: str = "schema.yaml"


class Split(_Model):
    strategy: Literal["time", "random", "stratified"] = "time"
    valid_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    test_fraction: float = Field(default=0.15, gt=0, lt=0.5)


class Prepare(_Model):
    split: Split = Field(default_factory=Split)


class Candidate(_Model):
    name: str
    estimator: str = Field(
        description="a built-in family (hist_gradient_boosting, logistic_regression, "
        "random_forest) or a dotted path to a scikit-learn estimator class"
    )
    params: dict[str, Any] = Field(default_factory=dict)


class Train(_Model):
    seed: int = 42
    baseline: Literal["auto", "prior", "most_frequent", "mean", "median"] = "auto"
    candidates: list[Candidate] = Field(
        default_factory=lambda: [
            Candidate(name="hgb", estimator="hist_gradient_boosting", params={})
        ],
        min_length=1,
    )


class Champion(_Model):
    """How a candidate must compare with the current champion on the same rows."""

    mode: Literal["superiority", "non_inferiority"] = "non_inferiority"
    tolerance: float = Field(default=0.005, ge=0)


class Gates(_Model):
    baseline_margin: float = Field(default=0.0, ge=0)
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="metric name → minimum (or maximum if lower is better)"
    )
    champion: Champion = Field(default_factory=Champion)


class Serve(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    unseen_category: Literal["reject", "unknown"] = "reject"
    max_body_bytes: int = Field(default=10_000_000, gt=0)


class Monitor(_Model):
    drift_test: Literal["auto", "ks", "chi2", "z", "psi", "wasserstein", "js", "hellinger"] = "auto"


class Spec(_Model):
    project: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    problem: Problem
    data: Data
    prepare: Prepare = Field(default_factory=Prepare)
    train: Train = Field(default_factory=Train)
    gates: Gates = Field(default_factory=Gates)
    serve: Serve = Field(default_factory=Serve)
    monitor: Monitor = Field(default_factory=Monitor)

    @model_validator(mode="after")
    def _thresholds_fit_task(self) -> Spec:
        allowed = METRICS_BY_TASK[self.problem.task]
        for name in self.gates.thresholds:
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
