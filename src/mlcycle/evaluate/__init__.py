"""Evaluation: holdout metrics by task and paired comparisons between models."""

from mlcycle.evaluate.metrics import compute_metrics, paired_difference, scores_for

__all__ = ["compute_metrics", "paired_difference", "scores_for"]
