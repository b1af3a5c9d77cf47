"""Training: baselines and candidates in scikit-learn pipelines that carry their preprocessing."""

from mlcycle.train.fit import FitResult, fit_baseline, fit_candidate

__all__ = ["FitResult", "fit_baseline", "fit_candidate"]
