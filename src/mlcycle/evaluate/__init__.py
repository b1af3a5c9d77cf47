"""Evaluation: holdout metrics with bootstrap intervals, slices, calibration, benefit,
paired comparisons between models (bootstrap, DeLong, McNemar) and the HTML report.

The lifecycle calls :func:`evaluate` (fitted models × test rows → an
:class:`~mlcycle.artifacts.Evaluation` and each model's scores) and
:func:`compare_with_champion` (the paired evidence the gate judges).

Example:
    >>> from mlcycle import evaluate
    >>> result = evaluate.evaluate(test, valid, models, problem=spec.problem,
    ...                            options=evaluate.options_from(spec.evaluate, seed=42))
"""

from mlcycle.evaluate.bootstrap import bootstrap_intervals, paired_bootstrap
from mlcycle.evaluate.compare import compare_models, paired_difference
from mlcycle.evaluate.metrics import compute_metrics, encode_labels, scores_for
from mlcycle.evaluate.stage import (
    HoldoutResult,
    champion_details,
    compare_with_champion,
    evaluate,
    options_from,
    report_data,
)
from mlcycle.evaluate.stats import delong, mcnemar

__all__ = [
    "HoldoutResult",
    "bootstrap_intervals",
    "champion_details",
    "compare_models",
    "compare_with_champion",
    "compute_metrics",
    "delong",
    "encode_labels",
    "evaluate",
    "mcnemar",
    "options_from",
    "paired_bootstrap",
    "paired_difference",
    "report_data",
    "scores_for",
]
