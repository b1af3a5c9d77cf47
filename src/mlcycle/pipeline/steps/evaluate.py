"""Evaluation and the gate: holdout metrics, then the verdict against baseline and champion."""

from __future__ import annotations

from pathlib import Path

import joblib

from mlcycle.artifacts import (
    BundleMeta,
    Evaluation,
)
from mlcycle.errors import NotFound
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.common import (
    ML_LIBS,
    load_split,
    score_model,
)


class Evaluate(Step):
    """Candidate and baseline → holdout metrics on the test split."""

    name = "evaluate"
    inputs = ("model", "baseline", "splits")
    sections = ("problem",)
    libraries = ML_LIBS

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.evaluate import compute_metrics

        problem = project.spec.problem
        test = load_split(project, inputs["splits"], "test")
        y = test[problem.target].to_numpy()
        metrics = {}
        for role in ("model", "baseline"):
            scores, record = score_model(project, inputs[role], test)
            metrics["candidate" if role == "model" else role] = compute_metrics(
                problem.task,
                y,
                scores,
                positive_label=problem.positive_label,
                classes=record.classes,
            )
        evaluation = Evaluation(
            task=problem.task, primary_metric=problem.metric, rows=len(test), metrics=metrics
        )
        with project.store.staging() as folder:
            (folder / "evaluation.json").write_text(evaluation.model_dump_json(indent=1))
            evaluation_id = project.store.put(
                folder,
                kind="evaluation",
                record=evaluation,
                parents={
                    "model": inputs["model"],
                    "baseline": inputs["baseline"],
                    "splits": inputs["splits"],
                },
            )
        m = problem.metric
        return StepResult(
            {"evaluation": evaluation_id},
            {
                "test_rows": len(test),
                m: round(metrics["candidate"][m], 4),
                f"baseline_{m}": round(metrics["baseline"].get(m, float("nan")), 4),
            },
        )


class Gate(Step):
    """Evaluation (+ the champion on the same rows) → Blessing."""

    name = "gate"
    inputs = ("evaluation", "model", "splits")
    sections = ("problem", "gates")
    libraries = ML_LIBS

    def _champion(self, project: Project) -> tuple[int, BundleMeta, Path] | None:
        try:
            resolved, folder = project.bundle(f"{project.name}@champion")
        except NotFound:
            return None
        meta = BundleMeta.model_validate_json((folder / "meta.json").read_text())
        return resolved.version, meta, folder

    def still_valid(self, project: Project, result: StepResult) -> bool:
        # The verdict holds while the champion it was judged against still reigns,
        # or once this very model has become the champion.
        champion = self._champion(project)
        if champion is None:
            return result.summary.get("champion_version") is None
        version, meta, _ = champion
        return version == result.summary.get("champion_version") or (
            meta.model_artifact_id == result.summary.get("model")
        )

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.evaluate import paired_difference
        from mlcycle.registry import judge

        spec = project.spec
        problem = spec.problem
        evaluation = Evaluation.model_validate(project.store.record(inputs["evaluation"]))
        champion = self._champion(project)
        champion_version, comparison = None, None
        if champion is not None:
            champion_version, meta, folder = champion
            test = load_split(project, inputs["splits"], "test")
            missing = [c for c in meta.features if c not in test.columns]
            if not missing:
                from mlcycle.evaluate import scores_for

                champion_model = joblib.load(folder / "model.joblib")
                champion_scores = scores_for(
                    problem.task, champion_model, test[meta.features], problem.positive_label
                )
                candidate_scores, record = score_model(project, inputs["model"], test)
                comparison = paired_difference(
                    problem.task,
                    problem.metric,
                    test[problem.target].to_numpy(),
                    candidate_scores,
                    champion_scores,
                    positive_label=problem.positive_label,
                    classes=record.classes,
                    seed=spec.train.seed,
                )
        blessing = judge(evaluation, spec.gates, champion_version, comparison)
        with project.store.staging() as folder:
            (folder / "blessing.json").write_text(blessing.model_dump_json(indent=1))
            blessing_id = project.store.put(
                folder,
                kind="blessing",
                record=blessing,
                parents={"evaluation": inputs["evaluation"], "model": inputs["model"]},
            )
        return StepResult(
            {"blessing": blessing_id},
            {
                "blessed": blessing.blessed,
                "failed": [c.detail for c in blessing.failures],
                "champion_version": champion_version,
                "model": inputs["model"],
            },
        )
