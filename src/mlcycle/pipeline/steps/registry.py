"""Registry steps: bundle the gate-checked package with its evidence, register it,
promote it when blessed.

The bundle is registered whether or not it was blessed: a refused model is
still a version anyone can inspect (``mlcycle models show NAME/N``) or force
out with a recorded reason. Only Promote depends on the verdict.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from mlcycle.artifacts import Blessing, Evaluation
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.registry.models import AliasConflict


class Register(Step):
    """Package + evidence → a bundle registered as the next version."""

    name = "register"
    inputs = ("package", "model", "baseline", "evaluation", "blessing", "dataset")
    sections = ("project", "problem")
    libraries = ("pandas", "pyarrow")
    revision = 2

    def still_valid(self, project: Project, result: StepResult) -> bool:
        bundle = result.outputs.get("bundle")
        return any(v.bundle_id == bundle for v in project.registry.versions(project.name))

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.registry.bundle import copy_package, finish_bundle, read_meta

        spec = project.spec
        store = project.store
        evaluation = Evaluation.model_validate(store.record(inputs["evaluation"]))
        blessing = Blessing.model_validate(store.record(inputs["blessing"]))
        package = store.path(inputs["package"])
        meta = read_meta(package)
        lineage = lineage_record(project, inputs, meta.spec_hash, meta.git_sha)
        with store.staging() as folder:
            copy_package(package, folder)
            finish_bundle(
                folder,
                evaluation=evaluation,
                blessing=blessing,
                problem=spec.problem,
                lineage=lineage,
                report_dir=store.path(inputs["blessing"]),
            )
            bundle_id = store.put(
                folder,
                kind="bundle",
                record={
                    "name": project.name,
                    "blessed": blessing.blessed,
                    "spec_hash": meta.spec_hash,
                    "git_sha": meta.git_sha,
                    "run_id": lineage.get("run_id"),
                    "host": platform.node(),
                },
                parents={
                    "package": inputs["package"],
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


def _add_outlier_model(folder: Path, seed: int) -> None:
    """Monitoring's outlier model (outliers.joblib); optional, so it never blocks registering."""
    try:
        from mlcycle.monitor.anomaly import fit_outlier_model

        fit_outlier_model(folder, seed=seed)
    except Exception as exc:  # anomaly scores are a bonus; the bundle is not
        import logging

        (folder / "outliers.joblib").unlink(missing_ok=True)
        logging.getLogger("mlcycle.monitor").warning("no outlier model in the bundle: %s", exc)


def lineage_record(
    project: Project, inputs: dict[str, str], spec_hash: str, git_sha: str | None
) -> dict[str, Any]:
    """Where the model came from: data version, raw partitions, spec, code and run."""
    dataset = project.store.record(inputs["dataset"])
    return {
        "dataset_id": inputs["dataset"],
        "dataset_rows": dataset.get("rows"),
        "source": dataset.get("source"),
        "source_fingerprint": dataset.get("source_fingerprint"),
        "partitions": dataset.get("partitions") or [],
        "watermark": dataset.get("watermark"),
        "transforms_hash": dataset.get("transforms_hash"),
        "model_id": inputs["model"],
        "evaluation_id": inputs["evaluation"],
        "blessing_id": inputs["blessing"],
        "spec_hash": spec_hash,
        "git_sha": git_sha,
        "run_id": project.run_id,
    }


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
            try:
                registry.promote(
                    project.name,
                    version,
                    alias="champion",
                    reason=f"blessed by the pipeline (blessing {inputs['blessing'][:12]})",
                    expected=current,
                )
            except AliasConflict:
                # Someone moved the champion since this run judged against it: the
                # blessing no longer speaks for the new champion, so do not overrule it.
                return StepResult(
                    {},
                    {
                        "champion": registry.alias_version(project.name, "champion"),
                        "note": "champion moved meanwhile; not promoted",
                    },
                )
        return StepResult({}, {"champion": version, "previous": current})
