"""Model tests: sanity checks and the behavioral tests declared in the spec.

Sanity: predictions are finite; probabilities lie in [0, 1] and sum to 1; the
model can (nearly) overfit a small debug sample; the same seed gives the same
predictions. Behavioral (``train.model_tests``): directional (raising a column
must not move the prediction the wrong way), invariance (setting a column to
other values moves it by at most epsilon) and minimum-functionality cases.
A failed ``error`` check makes the report fail, and the gate refuses blessing.

Example:
    >>> report = run_model_tests(fitted, name="hgb", build=make_pipeline, train=train_df,
    ...                          sample=valid_df, problem=problem, features=features,
    ...                          tests=spec.train.model_tests, seed=42)
    >>> report.passed
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle.artifacts import ModelCheck, ModelTestReport
from mlcycle.errors import BadInput
from mlcycle.spec import Directional, Invariance, MinimumCase, ModelTests, Problem
from mlcycle.train.fit import predictions, target_values


def _fraction(mask: np.ndarray) -> float:
    return float(np.mean(mask)) if mask.size else 0.0


def run_model_tests(
    model: Pipeline,
    *,
    name: str,
    build: Callable[[], Pipeline],
    train: pd.DataFrame,
    sample: pd.DataFrame,
    problem: Problem,
    features: list[str],
    tests: ModelTests,
    seed: int,
) -> ModelTestReport:
    """Run every sanity check and declared test on a fitted model; return the report."""
    columns = [t.column for t in tests.directional] + [t.column for t in tests.invariance]
    for column in columns:
        if column not in features:
            raise BadInput(
                f"model test on column '{column}', which is not a feature",
                "behavioral tests change a feature and watch the prediction",
                f"use one of: {', '.join(features)}",
            )
    X = sample[features].reset_index(drop=True)
    checks: list[ModelCheck] = []
    if tests.sanity:
        checks += _sanity(model, build, train, X, problem, features, tests.debug_rows, seed)
    for d in tests.directional:
        checks.append(_directional(model, X, problem, d))
    for inv in tests.invariance:
        checks.append(_invariance(model, X, problem, inv))
    for case in tests.cases:
        checks.append(_case(model, X, problem, features, case))
    return ModelTestReport(model=name, checks=checks)


def _sanity(
    model: Pipeline,
    build: Callable[[], Pipeline],
    train: pd.DataFrame,
    X: pd.DataFrame,
    problem: Problem,
    features: list[str],
    debug_rows: int,
    seed: int,
) -> list[ModelCheck]:
    checks = []
    scores = predictions(problem.task, model, X, problem.positive_label)
    finite = bool(np.isfinite(scores).all())
    checks.append(
        ModelCheck(
            name="predictions_finite",
            passed=finite,
            detail=f"{int((~np.isfinite(scores)).sum())} of {scores.size} scores are NaN/inf",
        )
    )
    if problem.task != "regression":
        proba = np.asarray(model.predict_proba(X), dtype="float64")
        in_range = bool(((proba >= 0) & (proba <= 1)).all())
        sums = np.abs(proba.sum(axis=1) - 1)
        checks.append(
            ModelCheck(
                name="probabilities_valid",
                passed=in_range and bool((sums <= 1e-6).all()),
                detail="probabilities lie in [0, 1] and each row sums to 1",
                figures={"max_sum_error": float(sums.max()) if sums.size else 0.0},
            )
        )
    debug = train.sample(n=min(debug_rows, len(train)), random_state=seed)
    y_debug = target_values(debug, problem)
    first = build().fit(debug[features], y_debug)
    fitted = predictions(problem.task, first, debug[features], problem.positive_label)
    if problem.task == "regression":
        total = float(np.sum((y_debug - y_debug.mean()) ** 2)) or 1.0
        r2 = 1 - float(np.sum((y_debug - fitted) ** 2)) / total
        checks.append(
            ModelCheck(
                name="overfits_debug_sample",
                passed=r2 >= 0.5,
                severity="warn",
                detail=f"R² {r2:.3f} on the {len(debug)} rows it was fitted on (≥ 0.5 expected)",
                figures={"r2": r2},
            )
        )
    else:
        predicted = first.predict(debug[features])
        accuracy = float(np.mean(predicted == y_debug))
        majority = float(pd.Series(y_debug).value_counts(normalize=True).iloc[0])
        needed = majority + 0.5 * (1 - majority)
        checks.append(
            ModelCheck(
                name="overfits_debug_sample",
                passed=accuracy >= needed,
                severity="warn",
                detail=f"accuracy {accuracy:.3f} on the {len(debug)} rows it was fitted on; "
                f"{needed:.3f} closes half the gap from the majority class to perfect",
                figures={"accuracy": accuracy, "majority": majority},
            )
        )
    second = build().fit(debug[features], y_debug)
    a = predictions(problem.task, first, X, problem.positive_label)
    b = predictions(problem.task, second, X, problem.positive_label)
    gap = float(np.nanmax(np.abs(a - b))) if a.size else 0.0
    checks.append(
        ModelCheck(
            name="same_seed_same_predictions",
            passed=gap <= 1e-12,
            detail=f"two fits with the same seed differ by at most {gap:.3g}",
            figures={"max_difference": gap},
        )
    )
    return checks


def _score(model: Pipeline, X: pd.DataFrame, problem: Problem) -> np.ndarray:
    if problem.task == "multiclass":
        raise BadInput(
            "directional and invariance tests need one score per row",
            "a multiclass model gives a probability per class",
            "use minimum-functionality cases with a label for multiclass models",
        )
    return predictions(problem.task, model, X, problem.positive_label)


def _directional(model: Pipeline, X: pd.DataFrame, problem: Problem, d: Directional) -> ModelCheck:
    base = _score(model, X, problem)
    moved = X.copy()
    moved[d.column] = moved[d.column] + d.delta
    after = _score(model, moved, problem)
    change = after - base
    wrong = change < -d.tolerance if d.expect == "increase" else change > d.tolerance
    wrong &= X[d.column].notna().to_numpy()
    frac = _fraction(wrong)
    return ModelCheck(
        name=f"directional:{d.column}{d.delta:+g}",
        passed=frac <= d.max_fraction,
        severity=d.severity,
        detail=f"raising {d.column} by {d.delta:g} should not make the prediction "
        f"{'fall' if d.expect == 'increase' else 'rise'}: {int(wrong.sum())} of {len(X)} rows "
        f"did (allowed fraction {d.max_fraction:g})",
        figures={
            "violating_fraction": frac,
            "worst": float(change.min() if d.expect == "increase" else change.max())
            if change.size
            else 0.0,
        },
    )


def _invariance(model: Pipeline, X: pd.DataFrame, problem: Problem, inv: Invariance) -> ModelCheck:
    base = _score(model, X, problem)
    worst = np.zeros(len(X))
    for value in inv.values:
        changed = X.copy()
        changed[inv.column] = pd.Series([value] * len(X), dtype=X[inv.column].dtype)
        worst = np.maximum(worst, np.abs(_score(model, changed, problem) - base))
    wrong = worst > inv.epsilon
    frac = _fraction(wrong)
    return ModelCheck(
        name=f"invariance:{inv.column}",
        passed=frac <= inv.max_fraction,
        severity=inv.severity,
        detail=f"setting {inv.column} to {inv.values} moved {int(wrong.sum())} of {len(X)} "
        f"predictions by more than {inv.epsilon:g}",
        figures={"violating_fraction": frac, "max_change": float(worst.max()) if len(X) else 0.0},
    )


def _case(
    model: Pipeline, X: pd.DataFrame, problem: Problem, features: list[str], case: MinimumCase
) -> ModelCheck:
    unknown = sorted(set(case.row) - set(features))
    if unknown:
        raise BadInput(
            f"model test case '{case.name}' names non-feature column(s) {unknown}",
            "a case is one input row of feature values",
            f"use: {', '.join(features)}",
        )
    row = pd.DataFrame([{c: case.row.get(c) for c in features}])
    for column in features:
        with contextlib.suppress(TypeError, ValueError):
            row[column] = row[column].astype(X[column].dtype)
    figures: dict[str, float | None] = {}
    failures: list[str] = []
    if case.label is not None:
        got = model.predict(row)[0]
        got = got.item() if hasattr(got, "item") else got
        if got != case.label:
            failures.append(f"label {got!r} ≠ {case.label!r}")
    if problem.task != "multiclass" and (
        case.min_proba is not None
        or case.max_proba is not None
        or case.low is not None
        or case.high is not None
    ):
        value = float(predictions(problem.task, model, row, problem.positive_label)[0])
        figures["prediction"] = value
        low = case.min_proba if case.min_proba is not None else case.low
        high = case.max_proba if case.max_proba is not None else case.high
        if low is not None and value < low:
            failures.append(f"{value:.4f} < {low}")
        if high is not None and value > high:
            failures.append(f"{value:.4f} > {high}")
    return ModelCheck(
        name=f"case:{case.name}",
        passed=not failures,
        severity=case.severity,
        detail="; ".join(failures) or "as expected",
        figures=figures,
    )


def report_summary(report: ModelTestReport) -> dict[str, Any]:
    """A short summary for the step's output: passed, and the failed checks by name."""
    return {
        "passed": report.passed,
        "failed": [f"{c.name} ({c.severity})" for c in report.failures],
    }
