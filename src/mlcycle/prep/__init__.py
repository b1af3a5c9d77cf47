"""Preparation: split a dataset version into train / valid / test without leakage, and the
feature pipeline a model puts in front of its estimator.

The feature-pipeline builder is defined in :mod:`mlcycle.features`, below the
stages, because the training stage builds it too (a stage never imports
another); this package is where the lifecycle finds it.

Example:
    >>> from mlcycle import prep
    >>> record, frames = prep.split_dataset(df, spec.prepare.split, timestamp=None, target="y")
    >>> prep.build_preprocessor(schema, prep.model_features(schema), "random_forest")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle.prep.ranges import (
    RangeFinding,
    range_findings,
    range_summary,
    split_range_findings,
)
from mlcycle.prep.split import recent_rows, split_dataset, split_frame, split_overlap

if TYPE_CHECKING:
    from mlcycle.features import TREE_FAMILIES, build_preprocessor, model_features

__all__ = [
    "TREE_FAMILIES",
    "RangeFinding",
    "build_preprocessor",
    "model_features",
    "range_findings",
    "range_summary",
    "recent_rows",
    "split_dataset",
    "split_frame",
    "split_overlap",
    "split_range_findings",
]

_FEATURES = ("TREE_FAMILIES", "build_preprocessor", "model_features")


def __getattr__(name: str) -> Any:
    # Lazily: the builder pulls in scikit-learn, which splitting does not need.
    if name in _FEATURES:
        from mlcycle import features

        return getattr(features, name)
    raise AttributeError(f"module 'mlcycle.prep' has no attribute {name!r}")
