"""What every spec section shares: the strict base model and the metrics by task."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
)

Task = Literal["binary", "multiclass", "regression"]

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "binary": (
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "f1",
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "mcc",
        "ece",
    ),
    "multiclass": (
        "accuracy",
        "f1_macro",
        "log_loss",
        "balanced_accuracy",
        "f1_weighted",
        "precision_macro",
        "precision_weighted",
        "recall_macro",
        "recall_weighted",
        "ece",
    ),
    "regression": ("rmse", "mae", "r2", "mape"),
}
# Metrics where a smaller value is better; the gate needs the direction.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae", "mape", "ece"})


class SpecModel(BaseModel):
    """The base of every spec section: unknown keys are errors and a loaded spec is frozen.

    Unknown keys fail loudly so a misspelt key (``treshold:``) is never ignored;
    frozen because the spec's hash keys the pipeline cache, so it must not
    change after loading.

    Example:
        >>> class Section(SpecModel):
        ...     size: int = 1
        >>> Section(size=2).size
        2
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
