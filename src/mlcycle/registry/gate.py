"""The promotion gate: a candidate is blessed only when every check passes.

The checks read figures that the evaluation computed; the gate only applies
policy. Against the champion it judges the *lower confidence bound* of the
paired improvement, not the point estimate, so a lucky holdout does not
promote a worse model. With no champion (cold start), the baseline margin and
thresholds still apply: nothing is blessed by default.

Example:
    >>> blessing = judge(evaluation, spec.gates)
    >>> blessing.blessed, [c.name for c in blessing.failures]
    (True, [])
"""

from __future__ import annotations

from mlcycle.artifacts import Blessing, Check, Evaluation
from mlcycle.spec import LOWER_IS_BETTER, Gates


def _better(metric: str, value: float, bound: float) -> bool:
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def judge(
    evaluation: Evaluation,
    gates: Gates,
    champion_version: int | None = None,
    comparison: dict[str, float] | None = None,
) -> Blessing:
    """Apply the spec's gate policy to an evaluation.

    ``comparison`` is the paired improvement of the primary metric over the
    champion on the same holdout rows (``improvement``, ``ci_low``, ``ci_high``).
    """
    metric = evaluation.primary_metric
    cand = evaluation.metrics["candidate"]
    checks: list[Check] = []

    for name, bound in sorted(gates.thresholds.items()):
        value = cand.get(name)
        op = "≤" if name in LOWER_IS_BETTER else "≥"
        checks.append(
            Check(
                name=f"threshold:{name}",
                passed=value is not None and _better(name, value, bound),
                detail=f"{name} = {'n/a' if value is None else round(value, 4)} "
                f"must be {op} {bound}",
                figures={"value": value, "bound": bound},
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
        low = comparison["ci_low"]
        checks.append(
            Check(
                name=f"vs_champion:{mode}",
                passed=low > bound,
                detail=f"{metric} improvement over champion v{champion_version}: "
                f"{comparison['improvement']:+.4f} (95% CI {low:+.4f} … "
                f"{comparison['ci_high']:+.4f}); lower bound must be > {bound:+.4f}",
                figures=dict(comparison),
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
    return Blessing(
        blessed=all(c.passed for c in checks),
        checks=checks,
        champion_version=champion_version,
    )
