"""The `train:` section: candidates, search spaces, CV, tuning budget, model tests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from mlcycle.spec.base import SpecModel


class Candidate(SpecModel):
    name: str
    estimator: str = Field(
        description="a built-in family (hist_gradient_boosting, logistic_regression, "
        "random_forest) or a dotted path to a scikit-learn estimator class"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, SearchParam] = Field(
        default_factory=dict, description="estimator parameter → range tuned by Optuna"
    )


class SearchParam(SpecModel):
    """One tuned parameter: ``int``/``float`` in [low, high] (``log: true`` for a log
    scale; ``type: log`` is short for a log-scale float), or ``categorical`` choices."""

    type: Literal["int", "float", "log", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _range(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical search parameter needs a non-empty 'choices'")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a {self.type} search parameter needs 'low' < 'high'")
        if (self.log or self.type == "log") and self.low <= 0:
            raise ValueError("a log-scale search parameter needs 'low' > 0")
        return self


class CrossValidation(SpecModel):
    """Folds of the training rows; ``auto`` is stratified for classes, k-fold otherwise."""

    kind: Literal["auto", "kfold", "stratified", "group", "time"] = "auto"
    folds: int = Field(default=5, ge=2, le=100)
    group_column: str | None = None

    @model_validator(mode="after")
    def _groups(self) -> CrossValidation:
        if self.kind == "group" and not self.group_column:
            raise ValueError("kind 'group' needs 'group_column', the column rows are grouped by")
        return self


class Tuning(SpecModel):
    """The Optuna budget: ``trials`` and/or ``seconds`` per candidate with a search space,
    and where the trials run (``backend``)."""

    trials: int | None = Field(default=20, ge=0)
    seconds: float | None = Field(default=None, ge=0)
    pruning: bool = True
    sampler: Literal["tpe", "random"] = "tpe"
    n_jobs: int = Field(
        default=1,
        ge=1,
        le=64,
        description="trials at once: threads (local), or Ray tasks (ray; default: the "
        "cluster's CPUs)",
    )
    backend: Literal["local", "ray"] = Field(
        default="local",
        description="local: trials in this process; ray: trials as Ray tasks on the cluster "
        "(RAY_ADDRESS, else a local one; needs mlcycle[ray]) sharing the stored study",
    )

    @model_validator(mode="after")
    def _budget(self) -> Tuning:
        if self.trials == 0 or self.seconds == 0 or (self.trials is None and self.seconds is None):
            raise ValueError(
                "a tuning budget of zero tunes nothing; set trials ≥ 1 and/or seconds > 0, "
                "or remove the candidates' 'search' to fit their params as given"
            )
        return self


class Directional(SpecModel):
    """Raising ``column`` by ``delta`` must not move the prediction against ``expect``."""

    column: str
    delta: float
    expect: Literal["increase", "decrease"] = "increase"
    tolerance: float = Field(default=1e-6, ge=0)
    max_fraction: float = Field(default=0.0, ge=0, le=1, description="rows allowed to violate")
    severity: Literal["error", "warn"] = "error"


class Invariance(SpecModel):
    """Setting ``column`` to each of ``values`` moves the prediction by at most ``epsilon``."""

    column: str
    values: list[Any] = Field(min_length=1)
    epsilon: float = Field(default=0.05, ge=0)
    max_fraction: float = Field(default=0.0, ge=0, le=1)
    severity: Literal["error", "warn"] = "error"


class MinimumCase(SpecModel):
    """A named input with the output it must get (a label, a probability bound or a range)."""

    name: str
    row: dict[str, Any]
    label: Any = None
    min_proba: float | None = Field(default=None, ge=0, le=1)
    max_proba: float | None = Field(default=None, ge=0, le=1)
    low: float | None = None
    high: float | None = None
    severity: Literal["error", "warn"] = "error"


class ModelTests(SpecModel):
    sanity: bool = True
    debug_rows: int = Field(default=200, ge=20)
    directional: list[Directional] = Field(default_factory=list)
    invariance: list[Invariance] = Field(default_factory=list)
    cases: list[MinimumCase] = Field(default_factory=list)


class Train(SpecModel):
    seed: int = 42
    baseline: Literal["auto", "prior", "most_frequent", "mean", "median", "persistence"] = "auto"
    candidates: list[Candidate] = Field(
        default_factory=lambda: [
            Candidate(name="hgb", estimator="hist_gradient_boosting", params={})
        ],
        min_length=1,
    )
    cv: CrossValidation | None = None
    tuning: Tuning = Field(default_factory=Tuning)
    final_fit: Literal["train", "train_valid"] = "train"
    model_tests: ModelTests = Field(default_factory=ModelTests)
