"""What a backtest hands back: one record per policy and one for the whole replay.

Plain records (no store, no pipeline): :class:`PolicyResult` is filled window by
window by :mod:`mlcycle.loop.backtest_steps`, :class:`BacktestResult` gathers them
for the CLI's JSON and the HTML report (:mod:`mlcycle.loop.backtest_report` reads
``BacktestResult.to_dict()``), and :func:`score_units` says what a score counts.

Example:
    >>> result = PolicyResult("never", "never retrain")
    >>> result.to_dict()["retrains"]
    0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle.loop.policies import DEFAULT_POLICY
from mlcycle.spec import LOWER_IS_BETTER, Spec

__all__ = ["BacktestResult", "PolicyResult", "score_units"]


@dataclass
class PolicyResult:
    """One policy's replay: its score, its counts, and one record per window."""

    name: str
    description: str
    score: float = 0.0
    retrains: int = 0
    promotions: int = 0
    rollbacks: int = 0
    windows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        metrics = [w["metric"] for w in self.windows if w["metric"] is not None]
        return {
            "name": self.name,
            "description": self.description,
            "score": self.score,
            "retrains": self.retrains,
            "promotions": self.promotions,
            "rollbacks": self.rollbacks,
            "mean_metric": float(np.mean(metrics)) if metrics else None,
            "windows": self.windows,
        }


@dataclass
class BacktestResult:
    """Every policy's replay, the default policy's name, and how the score is defined."""

    project: str
    metric: str
    unit: str
    score_units: str
    retrain_cost: float
    policies: list[PolicyResult]
    seconds: float = 0.0
    pipeline: dict[str, int] = field(default_factory=dict)
    default: str = DEFAULT_POLICY

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "project": self.project,
            "metric": self.metric,
            "window": self.unit,
            "score_units": self.score_units,
            "retrain_cost": self.retrain_cost,
            "seconds": round(self.seconds, 2),
            "pipeline": self.pipeline,
            "policies": [p.to_dict() for p in self.policies],
        }


def score_units(spec: Spec) -> str:
    """What a policy's score counts, in words (for the report and the docs)."""
    metric = spec.problem.metric
    if spec.problem.task == "binary" and spec.problem.benefit is not None:
        return "realized benefit (benefit-matrix units) − retrain_cost × retrains"
    sign = "−" if metric in LOWER_IS_BETTER else "+"
    return f"{sign}{metric} × rows, summed over windows − retrain_cost × retrains"
