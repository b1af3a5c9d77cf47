"""Multivariate drift: changes no single column shows.

* :func:`domain_auc` — a classifier is trained to tell reference rows from
  current rows; its cross-validated ROC AUC is 0.5 when it cannot (no drift)
  and approaches 1 when the joint distribution moved.
* :class:`PCAReconstruction` — PCA fitted on the standardised numeric
  reference features keeps the components explaining 90% of the variance;
  the ratio of the current window's mean reconstruction error to the
  reference's is about 1 without drift and grows when the correlations
  between features break.

Example:
    >>> domain_auc(ref_x, cur_x)
    0.51
    >>> PCAReconstruction.fit(ref_x).ratio(cur_x)
    1.02
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows per side the domain classifier sees (a cap keeps it ~0.2 s per window).
DOMAIN_ROWS = 1_000


def domain_auc(reference: np.ndarray, current: np.ndarray, *, seed: int = 0) -> float | None:
    """3-fold cross-validated ROC AUC of a reference-vs-current classifier.

    ``None`` when either side has fewer than 30 rows. Features are a float
    matrix (see :func:`mlcycle.monitor.anomaly.encode`); NaN is allowed.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    if len(reference) < 30 or len(current) < 30:
        return None
    rng = np.random.default_rng(seed)
    n = min(DOMAIN_ROWS, len(reference), len(current))
    r = reference[rng.choice(len(reference), n, replace=False)]
    c = current[rng.choice(len(current), n, replace=False)]
    x = np.vstack([r, c])
    y = np.r_[np.zeros(n), np.ones(n)]
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, random_state=seed)
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    from threadpoolctl import threadpool_limits

    # One thread: at this size OpenMP start-up and contention cost more than they save.
    with threadpool_limits(1):
        return float(np.mean(cross_val_score(model, x, y, cv=cv, scoring="roc_auc")))


@dataclass
class PCAReconstruction:
    """PCA on standardised numeric reference features; error ratio of a new window."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    reference_error: float

    @classmethod
    def fit(cls, reference: np.ndarray, variance: float = 0.9) -> PCAReconstruction | None:
        """Fit on a float matrix (NaN rows dropped); ``None`` with < 2 columns or 10 rows."""
        x = reference[~np.isnan(reference).any(axis=1)]
        if x.shape[1] < 2 or len(x) < 10:
            return None
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        z = (x - mean) / scale
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        explained = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(explained, variance) + 1)
        k = min(k, x.shape[1] - 1)
        comps = vt[:k]
        err = cls._error(z, comps)
        return cls(mean, scale, comps, err if err > 0 else 1e-12)

    @staticmethod
    def _error(z: np.ndarray, comps: np.ndarray) -> float:
        recon = (z @ comps.T) @ comps
        return float(np.mean(np.sum((z - recon) ** 2, axis=1)))

    def ratio(self, current: np.ndarray) -> float | None:
        """Mean reconstruction error of ``current`` over the reference's."""
        x = current[~np.isnan(current).any(axis=1)]
        if len(x) == 0:
            return None
        return self._error((x - self.mean) / self.scale, self.components) / self.reference_error
