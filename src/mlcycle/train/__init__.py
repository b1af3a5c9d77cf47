"""Training: baselines, candidates, cross-validation, tuning, tracking and model tests.

The fitting functions are imported lazily so ``mlcycle.train.tracking`` (the
experiment-tracking library) does not pull in scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcycle.train.fit import FitResult, fit_baseline, fit_candidate

__all__ = ["FitResult", "fit_baseline", "fit_candidate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlcycle.train import fit

        return getattr(fit, name)
    raise AttributeError(f"module 'mlcycle.train' has no attribute {name!r}")
