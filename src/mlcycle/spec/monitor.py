"""The `monitor:` section: drift decision, windows, alert rules and sinks."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from mlcycle.spec.base import SpecModel


class AlertRule(SpecModel):
    """One alert: a window metric against a fixed bound or a band learned from the reference.

    ``metric`` names a window metric (``drift:<feature>``, ``drift_share``,
    ``prediction_drift``, ``anomaly_rate``, ``rule_anomaly_rate``, ``domain_auc``,
    ``realized:<metric>``, ``estimated:<metric>``, ``concept_drift``...);
    ``above``/``below`` are fixed bounds; ``band: reference`` uses the band the
    reference gives for that metric. It fires once ``persistence`` consecutive
    windows break the rule.
    """

    name: str
    metric: str
    above: float | None = None
    below: float | None = None
    band: Literal["reference"] | None = None
    persistence: int = Field(default=1, ge=1)
    severity: Literal["info", "warning", "critical"] = "warning"


class AlertSinks(SpecModel):
    """Where alerts go besides the log and the store."""

    jsonl: str | None = Field(default=None, description="JSON-lines file, relative to the spec")
    webhook: str | None = Field(default=None, description="URL that receives an HTTP POST")
    webhook_retries: int = Field(default=3, ge=0, le=10)
    webhook_backoff_s: float = Field(default=0.5, ge=0)


class Monitor(SpecModel):
    drift_test: Literal[
        "auto", "evidently", "ks", "chi2", "z", "psi", "wasserstein", "js", "hellinger"
    ] = "auto"
    window: str = Field(
        default="day",
        pattern=r"^(day|week|month|rows:[1-9][0-9]*)$",
        description="day, week, month or rows:N (N predictions per window)",
    )
    persistence: int = Field(default=2, ge=1, description="windows a drift must last to alert")
    fdr: float = Field(default=0.05, gt=0, lt=1, description="Benjamini-Hochberg level")
    min_labels: int = Field(default=100, ge=1, description="labels a window needs for metrics")
    sliding: int = Field(default=3, ge=1, description="windows pooled for sliding metrics")
    roles: list[str] = Field(default_factory=lambda: ["champion", "batch"])
    alerts: list[AlertRule] = Field(default_factory=list)
    sinks: AlertSinks = Field(default_factory=AlertSinks)
