"""The promotion gate: a candidate is blessed only when every check passes.

The checks read figures that the evaluation and the paired tests computed;
the gate only applies policy:

- ``threshold:<metric>``: the pessimistic end of the metric's confidence
  interval (lower bound when higher is better) meets the spec's bound;
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

Example:
    >>> blessing = judge(evaluation, spec.gates)
    >>> blessing.blessed, [c.name for c in blessing.failures]
    (True, [])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlcycle.artifacts import Blessing, Check, Evaluation
from mlcycle.errors import BadInput
from mlcycle.spec import LOWER_IS_BETTER, METRICS_BY_TASK, Gates


def _better(metric: str, value: float, bound: float) -> bool:
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def _numbers(figures: Mapping[str, Any]) -> dict[str, float | None]:
    return {
        k: (None if v is None else float(v))
        for k, v in figures.items()
        if v is None or isinstance(v, int | float)
    }


def check_policy(task: str, gates: Gates) -> None:
    """Refuse a gate that names a metric the task does not have."""
    allowed = METRICS_BY_TASK[task]
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
    champion_version: int | None = None,
    comparison: Mapping[str, Any] | None = None,
    *,
    slices: list[dict[str, Any]] | None = None,
    model_tests: Mapping[str, Any] | None = None,
    infra: Mapping[str, Any] | None = None,
) -> Blessing:
    """Apply the spec's gate policy to an evaluation and the other evidence.

    ``comparison``: the paired improvement of the primary metric over the
    champion (``improvement``, ``ci_low``, ``ci_high``, optionally ``test``,
    ``p_value``). ``slices``: per-slice paired comparisons with the champion.
    ``model_tests``: ``{"passed": bool, "detail": str}``. ``infra``: the infra
    check's result (``passed``, ``detail`` and figures).
    """
    check_policy(evaluation.task, gates)
    metric = evaluation.primary_metric
    cand = evaluation.metrics["candidate"]
    cand_ci = evaluation.intervals.get("candidate", {})
    checks: list[Check] = []

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

    base = evaluation.metrics.get("baseline", {}).get(metric)
    value = cand.get(metric)
    if base is not None and value is not None:
        improvement = (base - value) if metric in LOWER_IS_BETTER else (value - base)
        checks.append(
            Check(
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
        )
    else:
        checks.append(
            Check(
                name="beats_baseline",
                passed=False,
                detail=f"{metric} is missing for the candidate or the baseline",
            )
        )

    if champion_version is not None and comparison is not None:
        mode = gates.champion.mode
        bound = 0.0 if mode == "superiority" else -gates.champion.tolerance
        low = float(comparison["ci_low"])
        test = comparison.get("test", "paired_bootstrap")
        p = comparison.get("p_value")
        checks.append(
            Check(
                name=f"vs_champion:{mode}",
                passed=low > bound,
                detail=f"{metric} improvement over champion v{champion_version} by {test}: "
                f"{comparison['improvement']:+.4f} (CI {low:+.4f} … "
                f"{comparison['ci_high']:+.4f}"
                + ("" if p is None else f", p = {p:.3g}")
                + f"); lower bound must be > {bound:+.4f}",
                figures=_numbers(comparison) | {"bound": bound},
            )
        )
    elif champion_version is not None:
        checks.append(
            Check(
                name="vs_champion",
                passed=False,
                detail=f"champion v{champion_version} could not be scored on the "
                "holdout rows, so the candidate cannot be compared with it",
            )
        )

    if champion_version is not None and slices:
        checks.append(_slice_check(metric, slices, gates.champion.slice_tolerance))

    if model_tests is not None:
        checks.append(
            Check(
                name="model_tests",
                passed=bool(model_tests.get("passed")),
                detail=str(model_tests.get("detail") or "model tests from the training stage"),
                figures=_numbers(model_tests.get("figures", {})),
            )
        )

    if infra is not None:
        checks.append(
            Check(
                name="infra",
                passed=bool(infra.get("passed")),
                detail=str(infra.get("detail", "")),
                figures=_numbers(infra.get("figures", {})),
            )
        )

    return Blessing(
        blessed=all(c.passed for c in checks),
        checks=checks,
        champion_version=champion_version,
    )


def _slice_check(metric: str, slices: list[dict[str, Any]], tolerance: float) -> Check:
    """A judged slice fails when it is worse by more than the tolerance *and* clearly worse.

    Clearly: the upper end of its paired interval is below 0. Small slices
    have wide intervals, so requiring the lower bound to clear −tolerance would
    fail almost every model on noise; a material, unmistakable drop is what the
    check is for.
    """
    judged = [s for s in slices if s.get("judged")]
    worse = [s for s in judged if s["improvement"] < -tolerance and s["ci_high"] < 0]
    worst = min(judged, key=lambda s: s["improvement"], default=None)
    if worse:
        listed = "; ".join(
            f"{s['column']}={s['value']} ({s['rows']} rows): {s['improvement']:+.4f} "
            f"(CI {s['ci_low']:+.4f} … {s['ci_high']:+.4f})"
            for s in sorted(worse, key=lambda s: s["improvement"])[:5]
        )
        detail = f"{len(worse)} slice(s) worse than the champion in {metric}: {listed}"
    else:
        detail = (
            f"no judged slice is clearly worse than the champion in {metric} "
            f"beyond {tolerance}; {len(judged)} of {len(slices)} slices judged"
        )
        if worst is not None:
            detail += f"; weakest: {worst['column']}={worst['value']} {worst['improvement']:+.4f}"
    return Check(
        name="slices",
        passed=not worse,
        detail=detail,
        figures={
            "judged": float(len(judged)),
            "worse": float(len(worse)),
            "tolerance": tolerance,
            "worst_improvement": None if worst is None else float(worst["improvement"]),
        },
    )
