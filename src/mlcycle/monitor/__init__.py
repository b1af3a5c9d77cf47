"""Monitoring: is production data still like the data the model learned from?

This first version covers data drift: :func:`drift_report` tests every column
of a current sample against a reference sample (normally the training rows
kept in the model bundle) and returns a :class:`mlcycle.artifacts.DriftReport`.
The test per column follows Evidently's default rules (:func:`choose_test`);
each test is also a plain function of two arrays in :mod:`.stattests`.

The package imports only NumPy, SciPy, pandas and mlcycle's shared modules, so
a serving image can run it without any training library.

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
