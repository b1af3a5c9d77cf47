"""The gate at its edges: bounds met exactly, missing figures, the champion modes, and the
figures and words each check records for the report (what a person reads to learn why a
candidate was refused)."""

from __future__ import annotations

import pytest

from mlcycle.artifacts import (
    ChampionEvidence,
    Check,
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
from mlcycle.spec import Gates


def _evaluation(
    candidate: dict[str, float],
    baseline: dict[str, float] | None = None,
    intervals: dict[str, tuple[float, float]] | None = None,
    primary: str = "roc_auc",
    task: str = "binary",
) -> Evaluation:
    metrics = {"candidate": candidate}
    if baseline is not None:
        metrics["baseline"] = baseline
    return Evaluation(
        task=task,
        primary_metric=primary,
        rows=1000,
        metrics=metrics,
        intervals={} if intervals is None else {"candidate": intervals},
    )


def _checks(
    evaluation: Evaluation,
    gates: Gates,
    champion: ChampionEvidence | None = None,
    *,
    model_tests: ModelTestReport | None = None,
    infra: InfraReport | None = None,
) -> dict[str, Check]:
    blessing = judge(evaluation, gates, champion, model_tests=model_tests, infra=infra)
    return {c.name: c for c in blessing.checks}


# --- thresholds ----------------------------------------------------------------------


def test_a_threshold_met_exactly_passes_in_both_directions() -> None:
    # ROC-AUC's lower bound equal to the bound passes; ECE's upper bound equal to its bound too.
    ok = _evaluation(
        {"roc_auc": 0.75, "ece": 0.03},
        {"roc_auc": 0.5},
        {"roc_auc": (0.625, 0.875), "ece": (0.015625, 0.0625)},
    )
    checks = _checks(ok, Gates(thresholds={"roc_auc": 0.625, "ece": 0.0625}))
    assert checks["threshold:roc_auc"].passed
    assert checks["threshold:ece"].passed
    # Just past the bound on either side is refused.
    tight = _checks(ok, Gates(thresholds={"roc_auc": 0.6251, "ece": 0.0624}))
    assert not tight["threshold:roc_auc"].passed
    assert not tight["threshold:ece"].passed


def test_threshold_checks_say_which_end_was_judged_and_record_the_figures() -> None:
    evaluation = _evaluation(
        {"roc_auc": 0.72, "ece": 0.03},
        {"roc_auc": 0.5},
        {"roc_auc": (0.70, 0.74), "ece": (0.02, 0.06)},
    )
    checks = _checks(evaluation, Gates(thresholds={"roc_auc": 0.69, "ece": 0.05}))
    auc, ece = checks["threshold:roc_auc"], checks["threshold:ece"]
    assert auc.detail == (
        "roc_auc = 0.7200 (95% CI 0.7000 … 0.7400); its lower bound must be ≥ 0.69"
    )
    assert auc.figures == {"value": 0.72, "judged": 0.70, "bound": 0.69}
    assert ece.detail == ("ece = 0.0300 (95% CI 0.0200 … 0.0600); its upper bound must be ≤ 0.05")
    assert ece.figures == {"value": 0.03, "judged": 0.06, "bound": 0.05}


def test_a_threshold_on_a_metric_without_a_figure_is_refused_and_says_so() -> None:
    # pr_auc is a binary metric, but this evaluation has no figure for it.
    checks = _checks(
        _evaluation({"roc_auc": 0.8}, {"roc_auc": 0.5}), Gates(thresholds={"pr_auc": 0.1})
    )
    check = checks["threshold:pr_auc"]
    assert not check.passed
    assert check.detail.startswith("pr_auc = n/a; ")
    assert check.figures == {"value": None, "judged": None, "bound": 0.1}
    # Without an interval the point value itself is judged.
    point = _checks(
        _evaluation({"roc_auc": 0.8}, {"roc_auc": 0.5}), Gates(thresholds={"roc_auc": 0.8})
    )
    assert point["threshold:roc_auc"].passed
    assert point["threshold:roc_auc"].detail == ("roc_auc = 0.8000; its lower bound must be ≥ 0.8")


def test_a_policy_naming_a_foreign_metric_lists_the_task_metrics() -> None:
    with pytest.raises(BadInput) as caught:
        check_policy("regression", Gates(thresholds={"roc_auc": 0.7}))
    assert caught.value.why.startswith("regression metrics: rmse, ")
    assert ", " in caught.value.why and "benefit" not in caught.value.why
    assert caught.value.fix == "fix the metric name in gates.thresholds"
    with pytest.raises(BadInput) as binary:
        check_policy("binary", Gates(thresholds={"rmse": 1.0}))
    assert binary.value.why.startswith("binary metrics: roc_auc, ")
    assert binary.value.why.endswith(", benefit")


# --- baseline ------------------------------------------------------------------------


def test_beating_the_baseline_by_exactly_the_margin_is_not_enough() -> None:
    # 0.75 - 0.5 = 0.25 exactly: the margin must be exceeded, not met.
    gates = Gates(baseline_margin=0.25)
    met = _checks(_evaluation({"roc_auc": 0.75}, {"roc_auc": 0.5}), gates)["beats_baseline"]
    assert not met.passed
    assert met.figures == {
        "candidate": 0.75,
        "baseline": 0.5,
        "improvement": 0.25,
        "margin": 0.25,
    }
    assert met.detail == "roc_auc improves on the baseline by 0.2500; required > 0.25"
    beyond = _checks(_evaluation({"roc_auc": 0.8125}, {"roc_auc": 0.5}), gates)["beats_baseline"]
    assert beyond.passed
    # Lower is better: RMSE 7.5 against a baseline at 10 improves by 2.5; a margin of 2.5 fails.
    rmse = _evaluation({"rmse": 7.5}, {"rmse": 10.0}, primary="rmse", task="regression")
    assert not _checks(rmse, Gates(baseline_margin=2.5))["beats_baseline"].passed
    assert _checks(rmse, Gates(baseline_margin=2.0))["beats_baseline"].passed


@pytest.mark.parametrize(
    ("candidate", "baseline"),
    [
        ({"roc_auc": 0.9}, None),  # no baseline scored at all
        ({"roc_auc": 0.9}, {"log_loss": 0.6}),  # a baseline without the primary metric
        ({"log_loss": 0.3}, {"roc_auc": 0.5}),  # a candidate without it
    ],
)
def test_a_missing_baseline_figure_fails_the_baseline_check(
    candidate: dict[str, float], baseline: dict[str, float] | None
) -> None:
    blessing = judge(_evaluation(candidate, baseline), Gates())
    assert not blessing.blessed
    [check] = blessing.failures
    assert check.name == "beats_baseline"
    assert check.detail == "roc_auc is missing for the candidate or the baseline"


# --- champion ------------------------------------------------------------------------


def _good() -> Evaluation:
    return _evaluation({"roc_auc": 0.8}, {"roc_auc": 0.5})


def _vs(low: float, p: float | None = None) -> ChampionEvidence:
    comparison = PairedComparison(
        test="delong", improvement=low + 0.25, ci_low=low, ci_high=low + 0.5, p_value=p
    )
    return ChampionEvidence(version=4, comparison=comparison)


def test_superiority_needs_a_lower_bound_above_zero_not_at_it() -> None:
    strict = Gates.model_validate({"champion": {"mode": "superiority"}})
    at_zero = _checks(_good(), strict, champion=_vs(0.0))["vs_champion:superiority"]
    assert not at_zero.passed
    assert at_zero.figures["bound"] == 0.0
    # Clearly above zero (but below 1) passes: the bound is 0, whatever the scale.
    assert _checks(_good(), strict, champion=_vs(0.5))["vs_champion:superiority"].passed


def test_non_inferiority_needs_a_lower_bound_above_minus_the_tolerance() -> None:
    gates = Gates.model_validate({"champion": {"tolerance": 0.25}})
    check = _checks(_good(), gates, champion=_vs(-0.25))["vs_champion:non_inferiority"]
    assert not check.passed
    assert check.figures["bound"] == -0.25
    assert _checks(_good(), gates, champion=_vs(-0.125))["vs_champion:non_inferiority"].passed


def test_the_champion_check_reports_the_test_the_interval_and_the_p_value() -> None:
    check = _checks(_good(), Gates(), champion=_vs(0.125, p=0.0123))["vs_champion:non_inferiority"]
    assert check.detail == (
        "roc_auc improvement over champion v4 by delong: +0.3750 (CI +0.1250 … +0.6250, "
        "p = 0.0123); lower bound must be > -0.0050"
    )
    assert check.figures["p_value"] == 0.0123 and check.figures["ci_low"] == 0.125
    no_p = _checks(_good(), Gates(), champion=_vs(0.125))["vs_champion:non_inferiority"]
    assert "(CI +0.1250 … +0.6250); lower bound" in no_p.detail


def test_an_unscored_champion_fails_and_its_slices_are_not_judged() -> None:
    worse_slice = SliceComparison(
        column="origin",
        value="JFK",
        rows=500,
        judged=True,
        improvement=-0.5,
        ci_low=-0.75,
        ci_high=-0.25,
    )
    blessing = judge(_good(), Gates(), ChampionEvidence(version=7, slices=[worse_slice]))
    assert blessing.champion_version == 7
    assert [c.name for c in blessing.checks] == ["beats_baseline", "vs_champion"]
    [failure] = blessing.failures
    assert failure.detail == (
        "champion v7 could not be scored on the holdout rows, so the candidate cannot be "
        "compared with it"
    )
    assert judge(_good(), Gates()).champion_version is None


# --- slices --------------------------------------------------------------------------


def _slice(
    value: str,
    improvement: float | None,
    high: float | None,
    *,
    low: float | None = -0.75,
    judged: bool = True,
) -> SliceComparison:
    return SliceComparison(
        column="origin",
        value=value,
        rows=300,
        judged=judged,
        improvement=improvement,
        ci_low=low,
        ci_high=high,
    )


def _slice_check(slices: list[SliceComparison], tolerance: float = 0.25) -> Check:
    gates = Gates.model_validate({"champion": {"slice_tolerance": tolerance}})
    champion = ChampionEvidence(
        version=2,
        comparison=PairedComparison(improvement=0.25, ci_low=0.125, ci_high=0.375),
        slices=slices,
    )
    return _checks(_good(), gates, champion=champion)["slices"]


def test_a_slice_exactly_at_the_tolerance_or_with_an_interval_ending_at_zero_passes() -> None:
    at_tolerance = _slice_check([_slice("JFK", -0.25, -0.125)])
    assert at_tolerance.passed
    ends_at_zero = _slice_check([_slice("JFK", -0.5, 0.0)])
    assert ends_at_zero.passed
    clearly = _slice_check([_slice("JFK", -0.5, -0.125)])
    assert not clearly.passed


def test_unjudged_slices_and_slices_without_an_interval_never_fail() -> None:
    check = _slice_check(
        [
            _slice("tiny", -0.5, -0.25, judged=False),  # too few rows: shown, not judged
            _slice("odd", -0.5, None, low=None),  # judged, but no interval to be sure
            _slice("EWR", 0.125, 0.25),
        ]
    )
    assert check.passed
    assert check.figures == {
        "judged": 2.0,
        "worse": 0.0,
        "tolerance": 0.25,
        "worst_improvement": -0.5,
    }
    assert check.detail == (
        "no judged slice is clearly worse than the champion in roc_auc beyond 0.25; "
        "2 of 3 slices judged; weakest: origin=odd -0.5000"
    )


def test_slices_without_figures_leave_no_weakest() -> None:
    check = _slice_check([_slice("tiny", None, None, low=None, judged=False)])
    assert check.passed
    assert check.figures["worst_improvement"] is None
    assert check.detail == (
        "no judged slice is clearly worse than the champion in roc_auc beyond 0.25; "
        "0 of 1 slices judged"
    )


def test_worse_slices_are_listed_worst_first_five_at_most() -> None:
    drops = [-0.375, -0.875, -0.5, -0.625, -0.75, -1.0]
    check = _slice_check([_slice(f"s{i}", d, -0.125) for i, d in enumerate(drops)])
    assert not check.passed
    assert check.figures == {
        "judged": 6.0,
        "worse": 6.0,
        "tolerance": 0.25,
        "worst_improvement": -1.0,
    }
    detail = check.detail
    assert detail.startswith("6 slice(s) worse than the champion in roc_auc: ")
    listed = detail.split(": ", 1)[1].split("; ")
    assert listed == [
        "origin=s5 (300 rows): -1.0000 (CI -0.7500 … -0.1250)",
        "origin=s1 (300 rows): -0.8750 (CI -0.7500 … -0.1250)",
        "origin=s4 (300 rows): -0.7500 (CI -0.7500 … -0.1250)",
        "origin=s3 (300 rows): -0.6250 (CI -0.7500 … -0.1250)",
        "origin=s2 (300 rows): -0.5000 (CI -0.7500 … -0.1250)",
    ]


# --- model tests and infra -----------------------------------------------------------


def test_model_test_failures_are_listed_five_at_most_with_their_severity() -> None:
    checks = [ModelCheck(name="finite", passed=True)] + [
        ModelCheck(name=f"case:{i}", passed=False, severity="warn" if i % 2 else "error")
        for i in range(6)
    ]
    check = _checks(_good(), Gates(), model_tests=ModelTestReport(model="hgb", checks=checks))[
        "model_tests"
    ]
    assert check.detail == (
        "1 of 7 model tests passed; failed: case:0 (error); case:1 (warn); case:2 (error); "
        "case:3 (warn); case:4 (error)"
    )
    assert check.figures == {"tests": 7.0, "failed": 6.0}
    # Only warnings failed: passed, and the detail still names them.
    warn_only = ModelTestReport(
        model="hgb", checks=[ModelCheck(name="w", passed=False, severity="warn")]
    )
    passed = _checks(_good(), Gates(), model_tests=warn_only)["model_tests"]
    assert passed.passed and passed.detail == "0 of 1 model tests passed; failed: w (warn)"


def test_infra_figures_keep_numbers_and_nulls_and_drop_text() -> None:
    infra = InfraReport(
        passed=True,
        detail="ok",
        figures={"p99_ms": 12, "size_mb": 3.5, "gpu_ms": None, "host": "box-1", "ok": "yes"},
    )
    check = _checks(_good(), Gates(), infra=infra)["infra"]
    assert check.passed
    assert check.figures == {"p99_ms": 12.0, "size_mb": 3.5, "gpu_ms": None}
