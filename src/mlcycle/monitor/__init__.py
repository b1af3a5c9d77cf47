"""Monitoring: is production data still like the data the model learned from?

* :func:`drift_report` tests every column of a current sample against a
  reference sample (normally the training rows kept in the model bundle) and
  returns a :class:`mlcycle.artifacts.DriftReport`; ``test="auto"`` is
  mlcycle's calibrated decision (:mod:`.calibrate`), ``test="evidently"``
  Evidently's default rules (:func:`choose_test`); each test is also a plain
  function of two arrays in :mod:`.stattests`.
* :class:`~.engine.Monitor` follows a model's prediction log (:mod:`mlcycle.predlog`)
  window by window (:mod:`.windows`): drift, prediction and target drift,
  multivariate drift (:mod:`.multivariate`), anomalies (:mod:`.anomaly`),
  realized and estimated performance (:mod:`.performance`, :mod:`.labels`),
  alerts (:mod:`.alerts`) and an HTML report (:mod:`.report`); it stores each
  window's profile, checks values against what training saw (the bundle's
  profile) and rolls window profiles up (:mod:`.profiled`). Features the spec
  marks seasonal are reported but kept out of drift share, alerts, anomalies
  and multivariate drift.
* :class:`~.streaming.BinnedCounts` measures binned drift of windows too big
  for memory.
* :mod:`.datasets` reads dataset versions (reference or current) through the
  store; :class:`~.reference.Reference` is what a model is compared with.

The package imports NumPy, SciPy, pandas, scikit-learn and mlcycle's shared
modules only, so a serving image can run it without Optuna or LightGBM.

Example:
    >>> from mlcycle.monitor import drift_report
    >>> report = drift_report(reference_df, current_df, schema=schema)
    >>> report.drifted
    ['dep_delay']
"""

from mlcycle.monitor.drift import TESTS, DriftTest, choose_test, drift_report
from mlcycle.monitor.stattests import (
    binned_counts,
    category_counts,
    chi2,
    hellinger,
    jensenshannon,
    ks,
    psi,
    wasserstein_norm,
    z_proportions,
)

__all__ = [
    "TESTS",
    "DriftTest",
    "binned_counts",
    "category_counts",
    "chi2",
    "choose_test",
    "drift_report",
    "hellinger",
    "jensenshannon",
    "ks",
    "psi",
    "wasserstein_norm",
    "z_proportions",
]
