"""Training: baselines, candidates, cross-validation, tuning, tracking and model tests.

The lifecycle calls :func:`train` (see :mod:`mlcycle.train.training`): train and
valid frames in, a :class:`TrainingResult` out, runs tracked through the
:class:`Tracking` it is handed. The fitting functions are imported lazily so
``mlcycle.train.tracking`` (the experiment-tracking library) does not pull in
scikit-learn.

Example:
    >>> from mlcycle import train
    >>> result = train.train(train_df, valid_df, schema=schema, problem=spec.problem,
    ...                      cfg=spec.train, tracking=tracking, metrics=compute_metrics)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcycle.train.fit import FitResult, fit_baseline, fit_candidate
    from mlcycle.train.training import Tracking, TrainingResult, train, trained_record

__all__ = [
    "FitResult",
    "Tracking",
    "TrainingResult",
    "fit_baseline",
    "fit_candidate",
    "train",
    "trained_record",
]

_FIT = ("FitResult", "fit_baseline", "fit_candidate")


def __getattr__(name: str) -> Any:
    if name in _FIT:
        from mlcycle.train import fit

        return getattr(fit, name)
    if name in __all__:
        from mlcycle.train import training

        return getattr(training, name)
    raise AttributeError(f"module 'mlcycle.train' has no attribute {name!r}")
