"""The gate's policy beyond the champion test: intervals, slices, model tests, infra,
and the spec errors a gate policy can contain."""

from __future__ import annotations

import pytest

from mlcycle.artifacts import (
    BenefitScore,
    ChampionEvidence,
    Evaluation,
    InfraReport,
    ModelCheck,
    ModelTestReport,
    PairedComparison,
    SliceComparison,
)
from mlcycle.errors import BadInput
from mlcycle.registry import judge
from mlcycle.registry.gate import check_policy
from mlcycle.spec import Gates, Spec


def _evaluation(low: float = 0.70, task: str = "binary") -> Evaluation:
    return Evaluation(
        task=task,
        primary_metric="roc_auc",
        rows=5000,
        metrics={"candidate": {"roc_auc": 0.72, "ece": 0.03}, "baseline": {"roc_auc": 0.5}},
        intervals={"candidate": {"roc_auc": (low, 0.74), "ece": (0.02, 0.06)}},
    )


def test_thresholds_are_judged_on_the_pessimistic_end_of_the_interval() -> None:
    gates = Gates(thresholds={"roc_auc": 0.69, "ece": 0.05})
    blessing = judge(_evaluation(low=0.70), gates)
    checks = {c.name: c for c in blessing.checks}
    assert checks["threshold:roc_auc"].passed
    # ECE 0.03 is under 0.05, but its upper bound 0.06 is not: refused.
    assert not checks["threshold:ece"].passed and "upper bound" in checks["threshold:ece"].detail
    assert not judge(_evaluation(low=0.68), Gates(thresholds={"roc_auc": 0.69})).blessed


def _slice(
    value: str, improvement: float, low: float, high: float, rows: int = 500
) -> SliceComparison:
    return SliceComparison(
        column="origin",
        value=value,
        rows=rows,
        judged=True,
        improvement=improvement,
        ci_low=low,
        ci_high=high,
    )


def _champion(slices: list[SliceComparison]) -> ChampionEvidence:
    solid = PairedComparison(improvement=0.01, ci_low=0.002, ci_high=0.02)
    return ChampionEvidence(version=2, comparison=solid, slices=slices)


def test_slice_non_regression() -> None:
    gates = Gates()
    noisy_dip = [_slice("JFK", -0.03, -0.08, 0.02), _slice("EWR", 0.01, -0.01, 0.03)]
    ok = judge(_evaluation(), gates, _champion(noisy_dip))
    assert ok.blessed, ok.failures  # worse on one slice, but not clearly
    clear_drop = [
        _slice("LGA", -0.05, -0.08, -0.02),
        SliceComparison(column="origin", value="X", rows=3, judged=False),
    ]
    refused = judge(_evaluation(), gates, _champion(clear_drop))
    assert [c.name for c in refused.failures] == ["slices"]
    assert "LGA" in refused.failures[0].detail
    within = [_slice("LGA", -0.015, -0.03, -0.001)]  # clearly worse, but within 0.02
    assert judge(_evaluation(), gates, _champion(within)).blessed


def test_model_tests_and_infra_checks() -> None:
    gates = Gates()
    report = ModelTestReport(
        model="hgb",
        checks=[
            ModelCheck(name="finite", passed=True),
            ModelCheck(name="case:huge tumour", passed=False, detail="1 failed"),
        ],
    )
    failed_tests = judge(_evaluation(), gates, model_tests=report)
    assert [c.name for c in failed_tests.failures] == ["model_tests"]
    assert "1 of 2 model tests passed" in failed_tests.failures[0].detail
    assert "case:huge tumour (error)" in failed_tests.failures[0].detail
    slow = InfraReport(passed=False, detail="p99 80 ms > 50 ms", figures={"p99_ms": 80.0})
    blessing = judge(_evaluation(), gates, infra=slow)
    assert [c.name for c in blessing.failures] == ["infra"]
    assert blessing.failures[0].figures["p99_ms"] == 80.0


def test_a_gate_naming_a_metric_the_task_lacks_is_refused() -> None:
    with pytest.raises(BadInput, match="'rmse', which a binary model does not have"):
        check_policy("binary", Gates(thresholds={"rmse": 1.0}))
    spec = {
        "project": "p",
        "problem": {"task": "regression", "target": "y"},
        "data": {"source": {"path": "d.parquet"}},
        "gates": {"thresholds": {"roc_auc": 0.7}},
    }
    with pytest.raises(BadInput, match="roc_auc"):
        Spec.from_dict(spec)


@pytest.mark.parametrize("key", ["tolerance", "slice_tolerance"])
def test_a_tolerance_with_the_wrong_sign_is_refused(key: str) -> None:
    spec = {
        "project": "p",
        "problem": {"task": "binary", "target": "y"},
        "data": {"source": {"path": "d.parquet"}},
        "gates": {"champion": {"mode": "non_inferiority", key: -0.01}},
    }
    with pytest.raises(BadInput) as caught:
        Spec.from_dict(spec)
    assert "gates.champion" in caught.value.why and "positive number: use 0.01" in caught.value.why


def test_evaluate_section_bounds() -> None:
    base = {
        "project": "p",
        "problem": {"task": "binary", "target": "y"},
        "data": {"source": {"path": "d.parquet"}},
    }
    spec = Spec.from_dict(base | {"evaluate": {"slices": ["origin"], "bootstrap": 500}})
    assert spec.evaluate.slices == ["origin"] and spec.evaluate.min_slice_rows == 200
    with pytest.raises(BadInput, match=r"evaluate\.confidence"):
        Spec.from_dict(base | {"evaluate": {"confidence": 95}})
    with pytest.raises(BadInput, match="did you mean 'slices'"):
        Spec.from_dict(base | {"evaluate": {"slice": ["origin"]}})


def _with_benefit(per_row: float, interval: tuple[float, float] | None) -> Evaluation:
    evaluation = _evaluation()
    evaluation.benefit = BenefitScore(
        threshold=0.095, per_row={"candidate": per_row, "baseline": -5.0}, interval=interval
    )
    return evaluation


def test_the_gate_refuses_a_candidate_whose_benefit_is_below_the_bound() -> None:
    gates = Gates(thresholds={"benefit": 0.0})
    below = {c.name: c for c in judge(_with_benefit(-0.4, (-0.9, 0.1)), gates).checks}
    assert not below["threshold:benefit"].passed
    assert below["threshold:benefit"].figures["value"] == -0.4
    assert "benefit = -0.4000" in below["threshold:benefit"].detail
    # Like any metric, the pessimistic end of the interval is judged: 0.3 > 0 is not enough.
    assert not judge(_with_benefit(0.3, (-0.2, 0.8)), gates).blessed
    above = {c.name: c for c in judge(_with_benefit(0.6, (0.1, 1.1)), gates).checks}
    assert above["threshold:benefit"].passed and above["threshold:benefit"].figures["judged"] == 0.1
    # No benefit figure (no matrix): refused, never passed by default.
    assert not {c.name: c for c in judge(_evaluation(), gates).checks}["threshold:benefit"].passed


def test_a_benefit_gate_needs_a_binary_problem_with_a_benefit_matrix() -> None:
    check_policy("binary", Gates(thresholds={"benefit": 0.0}))
    with pytest.raises(BadInput, match="'benefit', which a regression model does not have"):
        check_policy("regression", Gates(thresholds={"benefit": 0.0}))
    spec = {
        "project": "p",
        "problem": {"task": "binary", "target": "y"},
        "data": {"source": {"path": "d.parquet"}},
        "gates": {"thresholds": {"benefit": 0.0}},
    }
    with pytest.raises(BadInput, match=r"problem\.benefit matrix"):
        Spec.from_dict(spec)
    spec["problem"]["benefit"] = {"tp": 50, "fp": -10, "fn": -50}  # type: ignore[index]
    assert Spec.from_dict(spec).gates.thresholds == {"benefit": 0.0}
