"""The evaluation step: the candidate and its baseline on the test split (the stage is
:func:`mlcycle.evaluate.evaluate`). The scores it computes are stored with the
evaluation, so the gate judges and checks the very same numbers without scoring again."""

from __future__ import annotations

from typing import Any

from mlcycle.pipeline.catalog import Inputs, SavedEvaluation
from mlcycle.pipeline.context import RunContext
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.train import ML_LIBS


class Evaluate(Step):
    """Candidate and baseline → holdout metrics with intervals, slices, calibration, benefit."""

    name = "evaluate"
    inputs = ("model", "baseline", "splits")
    outputs = ("evaluation",)
    sections = ("problem", "evaluate", "train")
    libraries = ML_LIBS
    revision = 4  # 4: the learning curve; 3: the test scores are stored with the evaluation

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        from mlcycle import evaluate  # here: a cached step must not pay for SciPy

        problem = ctx.spec.problem
        test = inputs.split("test")
        result = evaluate.evaluate(
            test,
            inputs.split("valid"),
            {
                "candidate": (inputs.model.fitted, inputs.model.record),
                "baseline": (inputs.baseline.fitted, inputs.baseline.record),
            },
            problem=problem,
            options=evaluate.options_from(ctx.spec.evaluate, seed=ctx.spec.train.seed),
            # the learning curve refits on the training rows (in time order under a time split)
            train=inputs.split("train") if ctx.spec.evaluate.learning_curve.enabled else None,
            time_ordered=ctx.catalog.splits(inputs.id("splits")).strategy == "time",
        )
        evaluation = result.evaluation
        evaluation_id = ctx.catalog.save_evaluation(
            SavedEvaluation(evaluation, result.details, result.scores),
            parents=inputs.pick("model", "baseline", "splits"),
        )
        m = problem.metric
        cand_ci = evaluation.intervals.get("candidate", {}).get(m)
        summary: dict[str, Any] = {
            "test_rows": len(test),
            m: round(evaluation.metrics["candidate"].get(m, float("nan")), 4),
            f"baseline_{m}": round(evaluation.metrics["baseline"].get(m, float("nan")), 4),
        }
        if cand_ci:
            summary[f"{m}_ci"] = [round(cand_ci[0], 4), round(cand_ci[1], 4)]
        if evaluation.slices:
            summary["slices"] = len(evaluation.slices)
        if result.learning_curve is not None:
            summary["learning_curve"] = result.learning_curve.reading.code
        return StepResult({"evaluation": evaluation_id}, summary)
