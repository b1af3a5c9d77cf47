"""Registry steps: bundle and register the model, promote it when blessed."""

from __future__ import annotations

import platform
from datetime import UTC, datetime

import mlcycle
from mlcycle.artifacts import (
    Blessing,
    BundleMeta,
    Evaluation,
    TrainedModel,
)
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.common import (
    load_dataset,
    load_split,
)


class Register(Step):
    """Model + evidence → a bundle registered as the next version."""

    name = "register"
    inputs = ("model", "baseline", "evaluation", "blessing", "dataset", "splits")
    sections = ("project", "problem", "serve")
    libraries = ("pandas", "pyarrow")

    def still_valid(self, project: Project, result: StepResult) -> bool:
        bundle = result.outputs.get("bundle")
        return any(v.bundle_id == bundle for v in project.registry.versions(project.name))

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.registry.bundle import write_bundle

        spec = project.spec
        problem = spec.problem
        store = project.store
        dataset, _ = load_dataset(project, inputs["dataset"])
        model = TrainedModel.model_validate(store.record(inputs["model"]))
        evaluation = Evaluation.model_validate(store.record(inputs["evaluation"]))
        blessing = Blessing.model_validate(store.record(inputs["blessing"]))
        train = load_split(project, inputs["splits"], "train")
        reference_cols = [c for c in (*model.features, problem.target) if c in train.columns]
        meta = BundleMeta(
            name=project.name,
            task=problem.task,
            target=problem.target,
            positive_label=problem.positive_label,
            classes=model.classes,
            features=model.features,
            id_column=problem.id_column,
            timestamp_column=problem.timestamp_column,
            metrics=evaluation.metrics["candidate"],
            baseline_metrics=evaluation.metrics.get("baseline", {}),
            dataset_id=inputs["dataset"],
            model_artifact_id=inputs["model"],
            spec_hash=spec.hash(),
            git_sha=project.git_sha,
            mlcycle_version=mlcycle.__version__,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            unseen_category=spec.serve.unseen_category,
        )
        # created_at would make every bundle unique; the bundle's identity is its
        # evidence, so the timestamp is that of the training data's dataset record.
        meta = meta.model_copy(update={"created_at": _created_at(project, inputs["model"])})
        with store.staging() as folder:
            write_bundle(
                folder,
                model_file=store.path(inputs["model"]) / "model.joblib",
                schema=dataset.schema_,
                meta=meta,
                profile=dataset.profile,
                reference=train[reference_cols],
                evaluation=evaluation,
                blessing=blessing,
                problem=problem,
                seed=spec.train.seed,
            )
            bundle_id = store.put(
                folder,
                kind="bundle",
                record={
                    "name": project.name,
                    "blessed": blessing.blessed,
                    "spec_hash": meta.spec_hash,
                    "git_sha": meta.git_sha,
                    "host": platform.node(),
                },
                parents={
                    "model": inputs["model"],
                    "baseline": inputs["baseline"],
                    "evaluation": inputs["evaluation"],
                    "blessing": inputs["blessing"],
                    "dataset": inputs["dataset"],
                },
            )
        version = project.registry.register(project.name, bundle_id, blessed=blessing.blessed)
        return StepResult(
            {"bundle": bundle_id},
            {"model": project.name, "version": version, "blessed": blessing.blessed},
        )


def _created_at(project: Project, model_id: str) -> str:
    from sqlalchemy import select

    from mlcycle.store import tables as t

    with project.store.engine.connect() as conn:
        value = conn.execute(select(t.artifacts.c.created_at).where(t.artifacts.c.id == model_id))
        return str(value.scalar())


class Promote(Step):
    """A blessed version becomes the champion."""

    name = "promote"
    inputs = ("bundle", "blessing")
    sections = ("project",)

    def skip_reason(self, project: Project, inputs: dict[str, str]) -> str | None:
        blessing = Blessing.model_validate(project.store.record(inputs["blessing"]))
        if blessing.blessed:
            return None
        return "not blessed: " + "; ".join(c.detail for c in blessing.failures)

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        registry = project.registry
        version = next(
            v.version for v in registry.versions(project.name) if v.bundle_id == inputs["bundle"]
        )
        current = registry.alias_version(project.name, "champion")
        if current != version:
            registry.promote(
                project.name,
                version,
                alias="champion",
                reason=f"blessed by the pipeline (blessing {inputs['blessing'][:12]})",
            )
        return StepResult({}, {"champion": version, "previous": current})
