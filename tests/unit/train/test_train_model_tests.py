"""Model tests: sanity checks pass on a sound model, behavioral tests catch a bad one."""

from __future__ import annotations

import numpy as np
import pytest
from train_fixtures import mixed

from mlcycle.artifacts import ModelCheck, ModelTestReport
from mlcycle.errors import BadInput
from mlcycle.spec import Candidate, ModelTests
from mlcycle.train.fit import build_pipeline, fit_candidate
from mlcycle.train.model_tests import run_model_tests


def _run(tests: dict, *, flip: bool = False) -> ModelTestReport:
    df, problem, schema = mixed(400)
    if flip:  # a model that learned the opposite of the truth
        df["late"] = ~df["late"]
    candidate = Candidate(name="lr", estimator="logistic_regression")
    fit = fit_candidate(df, candidate, schema=schema, problem=problem, seed=3)
    return run_model_tests(
        fit.model,
        name="lr",
        build=lambda: build_pipeline(candidate, schema=schema, problem=problem, seed=3)[0],
        train=df,
        sample=df.head(100),
        problem=problem,
        features=fit.features,
        tests=ModelTests.model_validate(tests),
        seed=3,
    )


BEHAVIOUR = {
    "directional": [{"column": "delay", "delta": 30, "expect": "increase"}],
    "invariance": [{"column": "noise", "values": [-1.0, 1.0], "epsilon": 0.2}],
    "cases": [
        {
            "name": "very late",
            "row": {"delay": 120, "carrier": "AA"},
            "label": True,
            "min_proba": 0.9,
        },
        {"name": "early", "row": {"delay": -30, "noise": 0.0, "carrier": "UA"}, "max_proba": 0.1},
    ],
}


def test_sound_model_passes_sanity_and_behaviour() -> None:
    report = _run(BEHAVIOUR)
    by_name = {c.name: c for c in report.checks}
    assert {
        "predictions_finite",
        "probabilities_valid",
        "overfits_debug_sample",
        "same_seed_same_predictions",
        "directional:delay+30",
        "invariance:noise",
        "case:very late",
        "case:early",
    } == set(by_name)
    assert report.passed, report.failures
    assert by_name["same_seed_same_predictions"].figures["max_difference"] == 0.0


def test_behavioural_failures_block_and_warnings_do_not() -> None:
    report = _run(BEHAVIOUR, flip=True)
    failed = {c.name for c in report.failures}
    assert {"directional:delay+30", "case:very late", "case:early"} <= failed
    assert not report.passed
    warn_only = {
        "directional": [{"column": "delay", "delta": 30, "severity": "warn"}],
    }
    report = _run(warn_only, flip=True)
    assert report.failures and report.passed  # a failed warning does not block


def test_report_record_round_trips_and_passed_property() -> None:
    report = ModelTestReport(
        model="m",
        checks=[
            ModelCheck(name="a", passed=True),
            ModelCheck(name="b", passed=False, severity="warn", figures={"x": float("inf")}),
        ],
    )
    again = ModelTestReport.model_validate_json(report.model_dump_json())
    assert again.passed and np.isinf(again.checks[1].figures["x"])
    again.checks.append(ModelCheck(name="c", passed=False, severity="error"))
    assert not again.passed


def test_tests_on_unknown_columns_are_refused() -> None:
    with pytest.raises(BadInput, match="'colour', which is not a feature"):
        _run({"directional": [{"column": "colour", "delta": 1}]})
    with pytest.raises(BadInput, match="non-feature"):
        _run({"cases": [{"name": "x", "row": {"colour": 1}}]})
