"""Evaluation: holdout metrics with bootstrap intervals, slices, calibration, benefit,
paired comparisons between models (bootstrap, DeLong, McNemar) and the HTML report."""

from mlcycle.evaluate.bootstrap import bootstrap_intervals, paired_bootstrap
from mlcycle.evaluate.compare import compare_models, paired_difference
from mlcycle.evaluate.metrics import compute_metrics, encode_labels, scores_for
from mlcycle.evaluate.stats import delong, mcnemar

__all__ = [
    "bootstrap_intervals",
    "compare_models",
    "compute_metrics",
    "delong",
    "encode_labels",
    "mcnemar",
    "paired_bootstrap",
    "paired_difference",
    "scores_for",
]
