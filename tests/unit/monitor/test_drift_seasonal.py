"""Seasonal columns in drift_report: tested and decided, but their own p-value family."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.monitor import drift_report


def samples() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 400
    ref = pd.DataFrame(
        {
            "a": rng.normal(0.0, 1.0, n),
            "b": rng.normal(0.0, 1.0, n),
            "month": rng.integers(1, 6, n).astype(float) + rng.uniform(0, 0.5, n),
        }
    )
    cur = pd.DataFrame(
        {
            "a": rng.normal(0.25, 1.0, n),  # p-values apart, so adding one to the family moves them
            "b": rng.normal(0.05, 1.0, n),
            "month": rng.integers(7, 13, n).astype(float) + rng.uniform(0, 0.5, n),
        }
    )
    return ref, cur


def adjusted(report: object) -> dict[str, float | None]:
    return {f.feature: f.p_adjusted for f in report.features}  # type: ignore[attr-defined]


def test_seasonal_columns_leave_the_other_columns_family_alone() -> None:
    ref, cur = samples()
    alone = adjusted(drift_report(ref, cur, ["a", "b"], test="ks"))
    marked = drift_report(ref, cur, ["a", "b", "month"], test="ks", seasonal=["month"])
    got = adjusted(marked)
    assert got["a"] == pytest.approx(alone["a"]) and got["b"] == pytest.approx(alone["b"])
    # The seasonal column is still tested and decided (a family of its own: unadjusted).
    month = next(f for f in marked.features if f.feature == "month")
    assert month.drift and month.p_adjusted == pytest.approx(month.p_value)
    # Unmarked, its tiny p-value joins the family and moves the others' adjustment.
    mixed = adjusted(drift_report(ref, cur, ["a", "b", "month"], test="ks"))
    assert mixed["a"] != pytest.approx(alone["a"]) or mixed["b"] != pytest.approx(alone["b"])
