"""Candidate versus reference on the same holdout rows: the right paired test per metric.

ROC-AUC → DeLong; accuracy → McNemar; every other metric → paired bootstrap.
Each result says which test it used, the improvement (positive = better),
its confidence interval and, where the test has one, a p-value.

Example:
    >>> compare_models("binary", "roc_auc", y, new, old, positive_label=True)["test"]
    'delong'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcycle.errors import BadInput
from mlcycle.evaluate.bootstrap import paired_bootstrap
from mlcycle.evaluate.core import Scores
from mlcycle.evaluate.metrics import encode_labels
from mlcycle.evaluate.stats import delong, mcnemar

# Below these sizes the paired tests' normal approximations (DeLong, McNemar's
# Wald interval) and bootstrap percentiles are not trustworthy.
MIN_PAIRED_ROWS = 100
MIN_CLASS_ROWS = 10
MIN_DISCORDANT = 10


def test_for(metric: str) -> str:
    """The paired test the gate uses for ``metric``."""
    return {"roc_auc": "delong", "accuracy": "mcnemar"}.get(metric, "paired_bootstrap")


def check_holdout_size(task: str, metric: str, y: np.ndarray) -> None:
    """Raise :class:`BadInput` when the holdout is too small for the metric's paired test."""
    test = test_for(metric)
    fix = (
        "enlarge the holdout (prepare.split.test_fraction) or bring more data; "
        f"the paired test needs ≥ {MIN_PAIRED_ROWS} rows"
    )
    if len(y) < MIN_PAIRED_ROWS:
        raise BadInput(
            f"the holdout has {len(y)} rows, too few for the {test} test of {metric}",
            f"comparing with the champion needs at least {MIN_PAIRED_ROWS} rows",
            fix,
        )
    if task == "binary" and test == "delong":
        positives = int(y.sum())
        smaller = min(positives, len(y) - positives)
        if smaller < MIN_CLASS_ROWS:
            raise BadInput(
                f"the holdout has {positives} positive and {len(y) - positives} negative rows, "
                f"too few for DeLong's test of {metric}",
                f"DeLong needs at least {MIN_CLASS_ROWS} rows of each class",
                fix,
            )


def compare_models(
    task: str,
    metric: str,
    y_true: Any,
    candidate: Scores,
    reference: Scores,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The paired test of ``metric`` for the two models' scores on the same rows."""
    y = encode_labels(task, y_true, positive_label=positive_label, classes=classes)
    check_holdout_size(task, metric, y)
    test = test_for(metric)
    result: dict[str, Any]
    if test == "delong" and task == "binary":
        result = delong(y, candidate, reference, confidence=confidence)
    elif test == "mcnemar" and task in ("binary", "multiclass"):
        if task == "binary":
            right_a = (np.asarray(candidate) >= 0.5) == (y == 1)
            right_b = (np.asarray(reference) >= 0.5) == (y == 1)
        else:
            right_a = np.asarray(candidate).argmax(axis=1) == y
            right_b = np.asarray(reference).argmax(axis=1) == y
        result = mcnemar(right_a, right_b, confidence=confidence)
    else:
        test = "paired_bootstrap"
        result = paired_bootstrap(
            task, metric, y, candidate, reference, n_boot=n_boot, seed=seed, confidence=confidence
        )
    return {"test": test, "metric": metric, "confidence": confidence, **result}


def paired_difference(
    task: str,
    metric: str,
    y_true: Any,
    candidate: Scores,
    reference: Scores,
    *,
    positive_label: Any = None,
    classes: list[Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Paired bootstrap of ``metric``'s improvement, labels given as raw values.

    Example:
        >>> paired_difference("binary", "roc_auc", y, new, old, positive_label=True)["ci_low"]
        0.004
    """
    y = encode_labels(task, y_true, positive_label=positive_label, classes=classes)
    return paired_bootstrap(
        task, metric, y, candidate, reference, n_boot=n_boot, seed=seed, confidence=confidence
    )
