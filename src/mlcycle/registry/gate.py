"""The promotion gate: a candidate is blessed only when every check passes.

The checks read figures that the evaluation and the paired tests computed;
the gate only applies policy:

- ``threshold:<metric>``: the pessimistic end of the metric's confidence
  interval (lower bound when higher is better) meets the spec's bound;
  ``threshold:benefit`` does the same with the candidate's mean benefit per
  holdout row under ``problem.benefit`` (at the threshold chosen on validation);
- ``beats_baseline``: the primary metric beats the naive baseline by
  ``gates.baseline_margin``;
- ``vs_champion:<mode>``: the *lower confidence bound* of the paired
  improvement over the champion on the same rows (DeLong for ROC-AUC, McNemar
  for accuracy, paired bootstrap otherwise) is > 0 (superiority) or
  > −tolerance (non-inferiority); a lucky holdout cannot promote a worse model;
- ``slices``: no judged slice is clearly worse than the champion's beyond
  ``gates.champion.slice_tolerance``;
- ``model_tests``: the training stage's model tests passed (when present);
- ``infra``: the bundle loaded in a fresh process, answered sample rows through
  the serving code, and met the latency and size budgets (when run).

With no champion (cold start) the baseline margin and thresholds still apply:
nothing is blessed by default.

The evidence is typed: :class:`~mlcycle.artifacts.ChampionEvidence` (the paired
comparison and the per-slice ones), :class:`~mlcycle.artifacts.ModelTestReport`
and :class:`~mlcycle.artifacts.InfraReport`.

Example:
    >>> blessing = judge(evaluation, spec.gates)
    >>> blessing.blessed, [c.name for c in blessing.failures]
    (True, [])
    >>> judge(evaluation, spec.gates, ChampionEvidence(version=3, comparison=paired),
    ...       model_tests=report, infra=infra).blessed
    False
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlcycle.artifacts import (
    Blessing,
    ChampionEvidence,
    Check,
    Evaluation,
    InfraReport,
    ModelTestReport,
    SliceComparison,
)
from mlcycle.errors import BadInput
from mlcycle.spec import BENEFIT_GATE, LOWER_IS_BETTER, METRICS_BY_TASK, Gates


def _better(metric: str, value: float, bound: float) -> bool:
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def _numbers(figures: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        k: (None if v is None else float(v))
        for k, v in figures.items()
        if v is None or isinstance(v, int | float)
    }


def check_policy(task: str, gates: Gates) -> None:
    """Refuse a gate that names a metric the task does not have.

    Example:
        >>> check_policy("binary", Gates(thresholds={"rmse": 1.0}))
        Traceback (most recent call last):
        BadInput: gates.thresholds names 'rmse', which a binary model does not have
    """
    # A binary gate may also bound the benefit per row (problem.benefit).
    allowed = (*METRICS_BY_TASK[task], *((BENEFIT_GATE,) if task == "binary" else ()))
    for name in gates.thresholds:
        if name not in allowed:
            raise BadInput(
                f"gates.thresholds names '{name}', which a {task} model does not have",
                f"{task} metrics: {', '.join(allowed)}",
                "fix the metric name in gates.thresholds",
            )


def judge(
    evaluation: Evaluation,
    gates: Gates,
    champion: ChampionEvidence | None = None,
    *,
    model_tests: ModelTestReport | None = None,
    infra: InfraReport | None = None,
) -> Blessing:
    """Apply the spec's gate policy to an evaluation and the other evidence.

    ``champion``: the reigning champion's version with the paired improvement
    of the primary metric over it (``comparison``; ``None`` when the champion
    could not be scored) and per-slice comparisons. ``model_tests``: the
    training stage's report. ``infra``: the infra check's result. Evidence
    that is ``None`` is not judged.

    Example:
        >>> judge(evaluation, Gates(thresholds={"roc_auc": 0.7})).blessed
        True
    """
    check_policy(evaluation.task, gates)
    checks = _threshold_checks(evaluation, gates)
    checks.append(_baseline_check(evaluation, gates))
    if champion is not None:
        checks.append(_champion_check(evaluation.primary_metric, champion, gates))
        if champion.comparison is not None and champion.slices:
            checks.append(
                _slice_check(
                    evaluation.primary_metric, champion.slices, gates.champion.slice_tolerance
                )
            )
    if model_tests is not None:
        checks.append(_model_tests_check(model_tests))
    if infra is not None:
        checks.append(
            Check(
                name="infra",
                passed=infra.passed,
                detail=infra.detail,
                figures=_numbers(infra.figures),
            )
        )
    return Blessing(
        blessed=all(c.passed for c in checks),
        checks=checks,
        champion_version=None if champion is None else champion.version,
    )


def _candidate_figures(
    evaluation: Evaluation,
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """The candidate's metrics and intervals, with its benefit per row as ``benefit``."""
    cand = dict(evaluation.metrics["candidate"])
    cand_ci = dict(evaluation.intervals.get("candidate", {}))
    b = evaluation.benefit
    if b is not None and "candidate" in b.per_row:
        cand[BENEFIT_GATE] = b.per_row["candidate"]
        if b.interval is not None:
            cand_ci[BENEFIT_GATE] = b.interval
    return cand, cand_ci


def _threshold_checks(evaluation: Evaluation, gates: Gates) -> list[Check]:
    cand, cand_ci = _candidate_figures(evaluation)
    checks = []
    for name, bound in sorted(gates.thresholds.items()):
        value = cand.get(name)
        interval = cand_ci.get(name)
        lower_better = name in LOWER_IS_BETTER
        judged = value if interval is None else (interval[1] if lower_better else interval[0])
        op = "≤" if lower_better else "≥"
        shown = "n/a" if value is None else f"{value:.4f}"
        if interval is not None:
            shown += f" ({evaluation.confidence:.0%} CI {interval[0]:.4f} … {interval[1]:.4f})"
        checks.append(
            Check(
                name=f"threshold:{name}",
                passed=judged is not None and _better(name, judged, bound),
                detail=f"{name} = {shown}; its "
                + ("upper" if lower_better else "lower")
                + f" bound must be {op} {bound}",
                figures={"value": value, "judged": judged, "bound": bound},
            )
        )
    return checks


def _baseline_check(evaluation: Evaluation, gates: Gates) -> Check:
    metric = evaluation.primary_metric
    base = evaluation.metrics.get("baseline", {}).get(metric)
    value = evaluation.metrics["candidate"].get(metric)
    if base is None or value is None:
        return Check(
            name="beats_baseline",
            passed=False,
            detail=f"{metric} is missing for the candidate or the baseline",
        )
    improvement = (base - value) if metric in LOWER_IS_BETTER else (value - base)
    return Check(
        name="beats_baseline",
        passed=improvement > gates.baseline_margin,
        detail=f"{metric} improves on the baseline by {improvement:.4f}; "
        f"required > {gates.baseline_margin}",
        figures={
            "candidate": value,
            "baseline": base,
            "improvement": improvement,
            "margin": gates.baseline_margin,
        },
    )


def _champion_check(metric: str, champion: ChampionEvidence, gates: Gates) -> Check:
    comparison = champion.comparison
    if comparison is None:
        return Check(
            name="vs_champion",
            passed=False,
            detail=f"champion v{champion.version} could not be scored on the "
            "holdout rows, so the candidate cannot be compared with it",
        )
    mode = gates.champion.mode
    bound = 0.0 if mode == "superiority" else -gates.champion.tolerance
    low = comparison.ci_low
    p = comparison.p_value
    return Check(
        name=f"vs_champion:{mode}",
        passed=low > bound,
        detail=f"{metric} improvement over champion v{champion.version} by {comparison.test}: "
        f"{comparison.improvement:+.4f} (CI {low:+.4f} … {comparison.ci_high:+.4f}"
        + ("" if p is None else f", p = {p:.3g}")
        + f"); lower bound must be > {bound:+.4f}",
        figures=comparison.figures() | {"bound": bound},
    )


def _model_tests_check(report: ModelTestReport) -> Check:
    failed = report.failures
    detail = f"{len(report.checks) - len(failed)} of {len(report.checks)} model tests passed"
    if failed:
        detail += "; failed: " + "; ".join(f"{c.name} ({c.severity})" for c in failed[:5])
    return Check(
        name="model_tests",
        passed=report.passed,
        detail=detail,
        figures={"tests": float(len(report.checks)), "failed": float(len(failed))},
    )


def _slice_check(metric: str, slices: list[SliceComparison], tolerance: float) -> Check:
    """A judged slice fails when it is worse by more than the tolerance *and* clearly worse.

    Clearly: the upper end of its paired interval is below 0. Small slices
    have wide intervals, so requiring the lower bound to clear −tolerance would
    fail almost every model on noise; a material, unmistakable drop is what the
    check is for.
    """
    judged = [s for s in slices if s.judged and s.improvement is not None]
    worse = [s for s in judged if _num(s.improvement) < -tolerance and _num(s.ci_high) < 0]
    worst = min(judged, key=lambda s: _num(s.improvement), default=None)
    if worse:
        listed = "; ".join(
            f"{s.column}={s.value} ({s.rows} rows): {_num(s.improvement):+.4f} "
            f"(CI {_num(s.ci_low):+.4f} … {_num(s.ci_high):+.4f})"
            for s in sorted(worse, key=lambda s: _num(s.improvement))[:5]
        )
        detail = f"{len(worse)} slice(s) worse than the champion in {metric}: {listed}"
    else:
        detail = (
            f"no judged slice is clearly worse than the champion in {metric} "
            f"beyond {tolerance}; {len(judged)} of {len(slices)} slices judged"
        )
        if worst is not None:
            detail += f"; weakest: {worst.column}={worst.value} {_num(worst.improvement):+.4f}"
    return Check(
        name="slices",
        passed=not worse,
        detail=detail,
        figures={
            "judged": float(len(judged)),
            "worse": float(len(worse)),
            "tolerance": tolerance,
            "worst_improvement": None if worst is None else _num(worst.improvement),
        },
    )


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)
