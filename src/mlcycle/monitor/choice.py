"""Which statistical test judges a column: the registry of tests and Evidently's choice rules.

Example:
    >>> choose_test("numeric", 160_000, 900)
    ('wasserstein', 0.1)
    >>> TESTS["ks"].uses_p_value
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlcycle.errors import BadInput
from mlcycle.monitor import stattests as st
from mlcycle.monitor.stattests import Kind

#: Reference rows at or below which the p-value tests are used (Evidently: 1000).
SMALL_SAMPLE = 1000
#: A numeric column with at most this many distinct values is tested as categorical.
LOW_CARDINALITY = 5

#: Decision modes besides the named tests: mlcycle's calibrated default and Evidently's rules.
MODES = ("auto", "evidently")

TestFunc = Callable[[np.ndarray, np.ndarray, Kind], tuple[float, float | None]]


@dataclass(frozen=True)
class DriftTest:
    """One registered test: how to run it and how to read its result."""

    name: str
    title: str
    func: TestFunc
    uses_p_value: bool
    threshold: float
    numeric_only: bool = False

    def drifted(self, statistic: float, p_value: float | None, threshold: float) -> bool:
        """Drift is ``p_value < threshold`` for a p-value test, ``statistic >= threshold`` else."""
        if self.uses_p_value:
            return p_value is not None and p_value < threshold
        return statistic >= threshold


def _ks(ref: np.ndarray, cur: np.ndarray, kind: Kind) -> tuple[float, float | None]:
    return st.ks(ref, cur)


def _chi2(ref: np.ndarray, cur: np.ndarray, kind: Kind) -> tuple[float, float | None]:
    return st.chi2(ref, cur)


def _z(ref: np.ndarray, cur: np.ndarray, kind: Kind) -> tuple[float, float | None]:
    return st.z_proportions(ref, cur)


def _psi(ref: np.ndarray, cur: np.ndarray, kind: Kind) -> tuple[float, float | None]:
    return st.psi(ref, cur, kind)


def _wasserstein(ref: np.ndarray, cur: np.ndarray, kind: Kind) -> tuple[float, float | None]:
    return st.wasserstein_norm(ref, cur)


def _js(ref: np.ndarray, cur: np.ndarray, kind: Kind) -> tuple[float, float | None]:
    return st.jensenshannon(ref, cur, kind)


def _hellinger(ref: np.ndarray, cur: np.ndarray, kind: Kind) -> tuple[float, float | None]:
    return st.hellinger(ref, cur, kind)


#: The tests by the name used in ``monitor.drift_test`` and ``drift_report(test=...)``.
TESTS: dict[str, DriftTest] = {
    t.name: t
    for t in (
        DriftTest("ks", "Kolmogorov-Smirnov p-value", _ks, True, 0.05, numeric_only=True),
        DriftTest("chi2", "chi-square p-value", _chi2, True, 0.05),
        DriftTest("z", "Z-test (two proportions) p-value", _z, True, 0.05),
        DriftTest("psi", "Population Stability Index", _psi, False, 0.1),
        DriftTest(
            "wasserstein",
            "Wasserstein distance (normed)",
            _wasserstein,
            False,
            0.1,
            numeric_only=True,
        ),
        DriftTest("js", "Jensen-Shannon distance", _js, False, 0.1),
        DriftTest("hellinger", "Hellinger distance", _hellinger, False, 0.1),
    )
}


def choose_test(kind: str, n_ref: int, n_unique: int) -> tuple[str, float]:
    """Evidently's default drift test for a column: ``(test name, threshold)``.

    The rules of Evidently's ``get_default_stattest`` (legacy API 0.4.x,
    unchanged from 0.1.50 through 0.6.7), with ``n_ref`` the reference values
    left after dropping NaN/±inf and ``n_unique`` the distinct values over
    reference and current together:

    * ``n_ref <= 1000`` (p-value tests, drift when p < 0.05):
        - numeric with ``n_unique > 5`` → ``"ks"`` (two-sample Kolmogorov-Smirnov)
        - categorical, or numeric with ``n_unique <= 5`` → ``"chi2"``, or ``"z"``
          (two-proportion Z-test) when ``n_unique <= 2``
    * ``n_ref > 1000`` (distances, drift when statistic >= 0.1):
        - numeric with ``n_unique > 5`` → ``"wasserstein"`` (normed by the reference std)
        - categorical, or numeric with ``n_unique <= 5`` → ``"js"`` (Jensen-Shannon, natural log)

    Example:
        >>> choose_test("numeric", 160_000, 900)
        ('wasserstein', 0.1)
        >>> choose_test("categorical", 300, 2)
        ('z', 0.05)
    """
    if kind not in st.KINDS:
        raise BadInput(
            f"unknown column kind '{kind}'",
            "the default test depends on whether a column holds numbers or categories",
            f"use one of: {', '.join(st.KINDS)}",
        )
    categorical = kind == "categorical" or n_unique <= LOW_CARDINALITY
    if n_ref <= SMALL_SAMPLE:
        if categorical:
            name = "z" if n_unique <= 2 else "chi2"
            return name, TESTS[name].threshold
        return "ks", TESTS["ks"].threshold
    if categorical:
        return "js", TESTS["js"].threshold
    return "wasserstein", TESTS["wasserstein"].threshold
