"""The typed records that flow between stages.

Each record is a pydantic model stored as JSON beside the files of its artifact
(``record.json``); the store keys every artifact by the sha256 of its content.
Stages take and return these records; they never import one another.

Example:
    >>> report = ValidationReport(rows=10, violations=[])
    >>> report.ok
    True
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlcycle.schema import Schema, Violation

# --- data -------------------------------------------------------------------------


class Histogram(BaseModel):
    edges: list[float]
    counts: list[int]


class ColumnProfile(BaseModel):
    """Summary of one column; moments and counts so two profiles can be merged."""

    name: str
    kind: str
    count: int = Field(description="non-null values")
    nulls: int
    mean: float | None = None
    m2: float | None = Field(default=None, description="sum of squared deviations (Welford)")
    min: float | None = None
    max: float | None = None
    quantiles: dict[str, float] = Field(default_factory=dict, description="'0.5' → value")
    histogram: Histogram | None = None
    top: dict[str, int] = Field(default_factory=dict, description="most frequent values")
    distinct: int | None = Field(default=None, description="distinct-count (estimate)")

    @property
    def std(self) -> float | None:
        if self.m2 is None or self.count < 2:
            return None
        return float((self.m2 / (self.count - 1)) ** 0.5)


class Profile(BaseModel):
    rows: int
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)


class DatasetVersion(BaseModel):
    """Files: ``data.parquet``, ``record.json``."""

    rows: int
    columns: list[str]
    source: str
    source_fingerprint: str
    content_hash: str = Field(description="hash of the rows, independent of file encoding")
    schema_: Schema = Field(alias="schema")
    profile: Profile
    # Where the rows came from: the raw partitions (content hashes, in landing
    # order) and the transforms' code; no timestamps, so same content → same id.
    source_name: str = "main"
    partitions: list[str] = Field(default_factory=list)
    transforms_hash: str | None = None

    model_config = {"populate_by_name": True}


class ValidationReport(BaseModel):
    rows: int
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not any(v.severity == "error" for v in self.violations)

    @property
    def errors(self) -> list[Violation]:
        return [v for v in self.violations if v.severity == "error"]


# --- prep / train -------------------------------------------------------------------


class Splits(BaseModel):
    """Files: ``train.parquet``, ``valid.parquet``, ``test.parquet``."""

    strategy: str
    rows: dict[str, int]
    time_ranges: dict[str, tuple[str, str]] = Field(default_factory=dict)


class TrainedModel(BaseModel):
    """Files: ``model.joblib`` (a fitted sklearn Pipeline taking the feature columns)."""

    name: str
    estimator: str
    params: dict[str, Any]
    features: list[str]
    classes: list[Any] | None = None
    train_rows: int
    fit_seconds: float
    valid_metrics: dict[str, float] = Field(default_factory=dict)

    # A timing differs on every fit: the store keeps it out of the hashed record.json
    # (in the SQL row only), so two identical fits get one model id.
    VOLATILE_FIELDS: ClassVar[tuple[str, ...]] = ("fit_seconds",)


class ModelCheck(BaseModel):
    """One model test: a sanity check or a behavioral test declared in the spec."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    name: str
    passed: bool
    severity: Literal["error", "warn"] = "error"
    detail: str = ""
    figures: dict[str, float | None] = Field(default_factory=dict)


class ModelTestReport(BaseModel):
    """The train step's ``model_tests`` output; a failed ``error`` check blocks blessing.

    Example:
        >>> ModelTestReport(model="hgb", checks=[ModelCheck(name="finite", passed=True)]).passed
        True
    """

    model: str
    checks: list[ModelCheck]

    @property
    def passed(self) -> bool:
        return not any(c.severity == "error" and not c.passed for c in self.checks)

    @property
    def failures(self) -> list[ModelCheck]:
        return [c for c in self.checks if not c.passed]


# --- evaluate / registry ------------------------------------------------------------


class Evaluation(BaseModel):
    """Holdout metrics for the candidate and its baseline (and the champion, if any)."""

    task: str
    primary_metric: str
    rows: int
    metrics: dict[str, dict[str, float]] = Field(description="model role → metric → value")
    intervals: dict[str, dict[str, tuple[float, float]]] = Field(
        default_factory=dict, description="model role → metric → bootstrap (low, high)"
    )
    confidence: float = 0.95
    n_boot: int = 0
    seed: int = 0
    slices: list[SliceMetrics] = Field(default_factory=list)
    benefit: BenefitScore | None = None


class SliceMetrics(BaseModel):
    """Metrics of one slice of the holdout (e.g. ``origin = JFK``)."""

    column: str
    value: str
    rows: int
    judged: bool = Field(description="large enough (evaluate.min_slice_rows) to be judged")
    metrics: dict[str, dict[str, float]] = Field(description="model role → metric → value")
    intervals: dict[str, dict[str, tuple[float, float]]] = Field(default_factory=dict)


class BenefitScore(BaseModel):
    """Value of the decisions (spec ``problem.benefit``) at a threshold chosen on validation."""

    threshold: float = Field(description="P(positive) ≥ threshold → act; chosen on validation")
    per_row: dict[str, float] = Field(description="model role → mean benefit per holdout row")
    interval: tuple[float, float] | None = None
    baseline_threshold: float | None = None


class Check(BaseModel):
    name: str
    passed: bool
    detail: str
    figures: dict[str, float | None] = Field(default_factory=dict)


class Blessing(BaseModel):
    blessed: bool
    checks: list[Check]
    champion_version: int | None = None

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


class PairedComparison(BaseModel):
    """The paired test of the primary metric, candidate against the champion, on the same rows.

    ``improvement`` is candidate minus champion (oriented so that positive is
    better); the interval is the test's. Test-specific figures (``se``,
    ``only_candidate_right``, ``n_boot``, ...) are kept as extra fields.

    Example:
        >>> PairedComparison(test="delong", improvement=0.01, ci_low=0.002, ci_high=0.02).ci_low
        0.002
    """

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")

    test: str = "paired_bootstrap"
    metric: str | None = None
    confidence: float | None = None
    improvement: float
    ci_low: float
    ci_high: float
    p_value: float | None = None

    def figures(self) -> dict[str, float | None]:
        """Every numeric figure of the comparison (what a gate check records)."""
        return {
            k: (None if v is None else float(v))
            # only the figures the test produced (and extras), as the test reported them
            for k, v in self.model_dump(exclude_unset=True).items()
            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
        }


class SliceComparison(BaseModel):
    """The paired comparison with the champion within one slice of the holdout."""

    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")

    column: str
    value: str
    rows: int
    judged: bool
    note: str | None = None
    improvement: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


class ChampionEvidence(BaseModel):
    """What the gate knows about the reigning champion.

    ``comparison`` is ``None`` when the champion could not be scored on the
    holdout rows (e.g. it reads a column the new data lacks).
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")

    version: int
    comparison: PairedComparison | None = None
    slices: list[SliceComparison] = Field(default_factory=list)
    metrics: dict[str, float] | None = None


class InfraReport(BaseModel):
    """The infra check: the bundle loaded in a fresh process and answered within budget."""

    model_config = ConfigDict(ser_json_inf_nan="constants")

    passed: bool
    detail: str
    figures: dict[str, Any] = Field(default_factory=dict)


class BundleMeta(BaseModel):
    """``meta.json`` of a model bundle: what serving and monitoring need to know.

    A bundle folder holds ``model.joblib``, ``schema.json`` (the contract, as
    frozen in the training dataset version), ``meta.json``, ``profile.json``
    (reference profile) and ``reference.parquet`` (a sample of training rows,
    features and target, for drift tests that need raw values).
    """

    name: str
    task: str
    target: str
    positive_label: Any = None
    classes: list[Any] | None = None
    features: list[str]
    id_column: str | None = None
    timestamp_column: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    baseline_metrics: dict[str, float] = Field(default_factory=dict)
    dataset_id: str
    model_artifact_id: str
    spec_hash: str
    git_sha: str | None = None
    mlcycle_version: str
    created_at: str
    unseen_category: Literal["reject", "unknown"] = "reject"
    out_of_range: Literal["flag", "reject"] = Field(
        default="flag",
        description="a numeric input outside its training range (the schema's min/max): "
        "flag = score it and warn, reject = refuse the row (spec serve.out_of_range)",
    )
    seasonal: list[str] = Field(
        default_factory=list,
        description="features never range-checked: they move past the training range "
        "by design (spec data.features.seasonal)",
    )
    decision_threshold: float | None = Field(
        default=None,
        description="binary: label positive when P(positive) ≥ this (the benefit "
        "matrix's threshold, chosen on validation); None: the most probable class",
    )


class ModelVersionInfo(BaseModel):
    name: str
    version: int
    bundle_id: str
    blessed: bool
    created_at: str
    aliases: list[str] = Field(default_factory=list)


# --- monitor ------------------------------------------------------------------------


class FeatureDrift(BaseModel):
    # A category unseen in the reference makes χ² infinite; keep it through JSON.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    feature: str
    kind: str
    test: str
    statistic: float
    p_value: float | None = None
    threshold: float
    drift: bool
    p_adjusted: float | None = Field(
        default=None, description="Benjamini-Hochberg adjusted p-value (mlcycle's decision)"
    )


class DriftReport(BaseModel):
    reference_rows: int
    current_rows: int
    features: list[FeatureDrift]

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drift]
