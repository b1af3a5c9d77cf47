"""The training step: candidates and the baseline, the best chosen on validation."""

from __future__ import annotations

import json
from typing import Any

from mlcycle.artifacts import (
    TrainedModel,
)
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.common import (
    ML_LIBS,
    load_dataset,
    load_split,
    put_model,
)


class Train(Step):
    """Splits → the best candidate (by validation score) and the naive baseline."""

    name = "train"
    inputs = ("dataset", "splits")
    sections = ("problem", "train")
    libraries = ML_LIBS

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.evaluate import compute_metrics, scores_for
        from mlcycle.train import fit_baseline, fit_candidate

        spec = project.spec
        problem = spec.problem
        dataset, _ = load_dataset(project, inputs["dataset"])
        train = load_split(project, inputs["splits"], "train")
        valid = load_split(project, inputs["splits"], "valid")
        parents = {"dataset": inputs["dataset"], "splits": inputs["splits"]}
        metric = problem.metric
        lower_better = metric in ("log_loss", "brier", "rmse", "mae")

        results = []
        for candidate in spec.train.candidates:
            fitted = fit_candidate(
                train, candidate, schema=dataset.schema_, problem=problem, seed=spec.train.seed
            )
            scores = scores_for(
                problem.task, fitted.model, valid[fitted.features], problem.positive_label
            )
            valid_metrics = compute_metrics(
                problem.task,
                valid[problem.target].to_numpy(),
                scores,
                positive_label=problem.positive_label,
                classes=fitted.classes,
            )
            results.append((fitted, valid_metrics))
        best, best_metrics = sorted(
            results, key=lambda r: r[1][metric] if lower_better else -r[1][metric]
        )[0]
        baseline = fit_baseline(
            train, strategy=spec.train.baseline, schema=dataset.schema_, problem=problem
        )

        def record(fit: Any, metrics: dict[str, float]) -> TrainedModel:
            return TrainedModel(
                name=fit.name,
                estimator=fit.estimator,
                params=_jsonable(fit.params),
                features=fit.features,
                classes=fit.classes,
                train_rows=len(train),
                fit_seconds=fit.fit_seconds,
                valid_metrics=metrics,
            )

        model_id = put_model(project, best.model, record(best, best_metrics), parents)
        base_scores = scores_for(
            problem.task, baseline.model, valid[baseline.features], problem.positive_label
        )
        base_metrics = compute_metrics(
            problem.task,
            valid[problem.target].to_numpy(),
            base_scores,
            positive_label=problem.positive_label,
            classes=baseline.classes,
        )
        baseline_id = put_model(project, baseline.model, record(baseline, base_metrics), parents)
        return StepResult(
            {"model": model_id, "baseline": baseline_id},
            {
                "best": best.name,
                "valid": {r[0].name: round(r[1][metric], 4) for r in results}
                | {"baseline": round(base_metrics.get(metric, float("nan")), 4)},
                "fit_seconds": round(best.fit_seconds, 2),
            },
        )


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))
