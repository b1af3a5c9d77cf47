"""Evaluation and the gate: holdout metrics, then the verdict against baseline and champion.

The ordering problem (the infra check needs a bundle, the bundle holds the
verdict) is solved by splitting the bundle in two:

1. the Gate step first writes a *package* artifact: exactly the files the
   serving code loads (``model.joblib``, ``meta.json``, ``schema.json``) plus
   the reference profile and sample;
2. it runs the infra check on that package in a fresh process, through
   :class:`mlcycle.serve.ModelRuntime` (the REST service's own code), then
   judges and writes the Blessing (with the HTML/JSON report);
3. the Register step copies the package byte for byte into the bundle and adds
   the evidence (evaluation, blessing, report, model card, lineage). It
   registers the bundle blessed or not; only Promote depends on the verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from mlcycle.artifacts import (
    BundleMeta,
    Evaluation,
    ModelTestReport,
    TrainedModel,
)
from mlcycle.errors import NotFound
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.common import (
    ML_LIBS,
    load_dataset,
    load_split,
    score_model,
)
from mlcycle.pipeline.steps.infra import infra_check


def _options(project: Project) -> Any:
    from mlcycle.evaluate.holdout import Options

    ev = project.spec.evaluate
    return Options(
        n_boot=ev.bootstrap,
        seed=project.spec.train.seed,
        confidence=ev.confidence,
        slices=list(ev.slices),
        min_slice_rows=ev.min_slice_rows,
        max_slice_values=ev.max_slice_values,
        bins=ev.calibration_bins,
    )


class Evaluate(Step):
    """Candidate and baseline → holdout metrics with intervals, slices, calibration, benefit."""

    name = "evaluate"
    inputs = ("model", "baseline", "splits")
    sections = ("problem", "evaluate", "train")
    libraries = ML_LIBS
    revision = 2

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.evaluate.holdout import evaluate_holdout

        problem = project.spec.problem
        test = load_split(project, inputs["splits"], "test")
        valid = load_split(project, inputs["splits"], "valid")
        scores: dict[str, np.ndarray] = {}
        valid_scores: dict[str, np.ndarray] = {}
        classes = None
        for role, key in (("candidate", "model"), ("baseline", "baseline")):
            scores[role], record = score_model(project, inputs[key], test)
            if role == "candidate":
                classes = record.classes
            if problem.task == "binary" and problem.benefit is not None and len(valid):
                valid_scores[role], _ = score_model(project, inputs[key], valid)
        opts = _options(project)
        missing = [c for c in opts.slices if c not in test.columns]
        if missing:
            from mlcycle.evaluate.holdout import slice_masks

            slice_masks(test, missing, 1)  # raises BadInput naming the column
        evaluation, details = evaluate_holdout(
            problem.task,
            problem.metric,
            test[problem.target].to_numpy(),
            scores,
            positive_label=problem.positive_label,
            classes=classes,
            slice_frame=test[opts.slices] if opts.slices else None,
            options=opts,
            benefit=problem.benefit.model_dump() if problem.benefit else None,
            valid=(valid[problem.target].to_numpy(), valid_scores) if valid_scores else None,
        )
        with project.store.staging() as folder:
            (folder / "evaluation.json").write_text(evaluation.model_dump_json(indent=1))
            (folder / "details.json").write_text(json.dumps(details))
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
        return StepResult({"evaluation": evaluation_id}, summary)


class Gate(Step):
    """Evaluation + package (+ champion, + model tests) → infra check → Blessing and report."""

    name = "gate"
    inputs = ("evaluation", "model", "splits", "dataset")
    optional_inputs = ("model_tests",)
    sections = ("project", "problem", "gates", "evaluate", "serve", "train")
    libraries = ML_LIBS
    revision = 4  # 4: ONNX parity on the holdout rows

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
        from mlcycle.evaluate import compare_models
        from mlcycle.evaluate.holdout import compare_slices
        from mlcycle.evaluate.report import render_html
        from mlcycle.registry.gate import check_policy, judge

        spec = project.spec
        problem = spec.problem
        store = project.store
        evaluation = Evaluation.model_validate(store.record(inputs["evaluation"]))
        check_policy(problem.task, spec.gates)  # a bad policy fails before any work
        opts = _options(project)
        test = load_split(project, inputs["splits"], "test")
        candidate_scores, record = score_model(project, inputs["model"], test)

        champion = self._champion(project)
        champion_version: int | None = None
        comparison: dict[str, Any] | None = None
        slice_comparison: list[dict[str, Any]] | None = None
        champion_metrics: dict[str, float] | None = None
        champion_scores: np.ndarray | None = None
        if champion is not None:
            champion_version, meta, folder = champion
            if not [c for c in meta.features if c not in test.columns]:
                from mlcycle.evaluate import compute_metrics, scores_for

                champion_model = joblib.load(folder / "model.joblib")
                champion_scores = scores_for(
                    problem.task, champion_model, test[meta.features], problem.positive_label
                )
                y_test = test[problem.target].to_numpy()
                comparison = compare_models(
                    problem.task,
                    problem.metric,
                    y_test,
                    candidate_scores,
                    champion_scores,
                    positive_label=problem.positive_label,
                    classes=record.classes,
                    n_boot=opts.n_boot or 1000,
                    seed=opts.seed,
                    confidence=opts.confidence,
                )
                champion_metrics = compute_metrics(
                    problem.task,
                    y_test,
                    champion_scores,
                    positive_label=problem.positive_label,
                    classes=record.classes,
                )
                usable = [c for c in opts.slices if c in test.columns]
                if usable:
                    opts.slices = usable
                    slice_comparison = compare_slices(
                        problem.task,
                        problem.metric,
                        y_test,
                        candidate_scores,
                        champion_scores,
                        test[usable],
                        positive_label=problem.positive_label,
                        classes=record.classes,
                        options=opts,
                    )

        model_tests = None
        if "model_tests" in inputs:
            report = ModelTestReport.model_validate(store.record(inputs["model_tests"]))
            failed = report.failures
            model_tests = {
                "passed": report.passed,
                "detail": f"{len(report.checks) - len(failed)} of {len(report.checks)} model "
                "tests passed"
                + (
                    "; failed: " + "; ".join(f"{c.name} ({c.severity})" for c in failed[:5])
                    if failed
                    else ""
                ),
                "figures": {"tests": len(report.checks), "failed": len(failed)},
            }

        package_id = self._package(project, inputs, record)
        infra = None
        if spec.gates.infra_check:
            infra = infra_check(
                store.path(package_id),
                test,
                record,
                candidate_scores,
                problem_task=problem.task,
                positive_label=problem.positive_label,
                latency_budget_ms=problem.latency_budget_ms,
                max_bundle_mb=spec.gates.max_bundle_mb,
            )

        blessing = judge(
            evaluation,
            spec.gates,
            champion_version,
            comparison,
            slices=slice_comparison,
            model_tests=model_tests,
            infra=infra,
        )
        details = json.loads((store.path(inputs["evaluation"]) / "details.json").read_text())
        if champion_scores is not None:
            from mlcycle.evaluate.holdout import details_for

            details["roles"]["champion"] = details_for(
                problem.task,
                test[problem.target].to_numpy(),
                champion_scores,
                problem.positive_label,
                record.classes,
                opts.bins,
            )
        report_data = {
            "project": project.name,
            "evaluation": evaluation.model_dump(mode="json"),
            "details": details,
            "champion": None
            if champion_version is None
            else {
                "version": champion_version,
                "metrics": champion_metrics,
                "comparison": comparison,
                "slices": slice_comparison,
            },
            "blessing": blessing.model_dump(mode="json"),
            "benefit_matrix": problem.benefit.model_dump() if problem.benefit else None,
        }
        parents = {
            "evaluation": inputs["evaluation"],
            "model": inputs["model"],
            "package": package_id,
        }
        if "model_tests" in inputs:
            parents["model_tests"] = inputs["model_tests"]
        with store.staging() as folder:
            (folder / "blessing.json").write_text(blessing.model_dump_json(indent=1))
            (folder / "report.json").write_text(json.dumps(report_data, indent=1, default=str))
            (folder / "report.html").write_text(render_html(report_data), encoding="utf-8")
            blessing_id = store.put(folder, kind="blessing", record=blessing, parents=parents)
        return StepResult(
            {"blessing": blessing_id, "package": package_id},
            {
                "blessed": blessing.blessed,
                "failed": [c.detail for c in blessing.failures],
                "champion_version": champion_version,
                "model": inputs["model"],
                "report": str(store.path(blessing_id) / "report.html"),
            },
        )

    def _package(self, project: Project, inputs: dict[str, str], record: TrainedModel) -> str:
        """The files the serving code loads, as an artifact the infra check can open."""
        import mlcycle
        from mlcycle.registry.bundle import write_package

        spec = project.spec
        problem = spec.problem
        store = project.store
        dataset, _ = load_dataset(project, inputs["dataset"])
        train = load_split(project, inputs["splits"], "train")
        reference_cols = [c for c in (*record.features, problem.target) if c in train.columns]
        meta = BundleMeta(
            name=project.name,
            task=problem.task,
            target=problem.target,
            positive_label=problem.positive_label,
            classes=record.classes,
            features=record.features,
            id_column=problem.id_column,
            timestamp_column=problem.timestamp_column,
            metrics={},
            baseline_metrics={},
            dataset_id=inputs["dataset"],
            model_artifact_id=inputs["model"],
            spec_hash=spec.hash(),
            git_sha=project.git_sha,
            mlcycle_version=mlcycle.__version__,
            # the training model's timestamp, so the same evidence makes the same bundle
            created_at=_created_at(project, inputs["model"]),
            unseen_category=spec.serve.unseen_category,
        )
        evaluation = Evaluation.model_validate(store.record(inputs["evaluation"]))
        meta = meta.model_copy(
            update={
                "metrics": evaluation.metrics["candidate"],
                "baseline_metrics": evaluation.metrics.get("baseline", {}),
            }
        )
        with store.staging() as folder:
            write_package(
                folder,
                model_file=store.path(inputs["model"]) / "model.joblib",
                schema=dataset.schema_,
                meta=meta,
                profile=dataset.profile,
                reference=train[reference_cols],
                seed=spec.train.seed,
            )
            # Everything serving or monitoring loads belongs in the package, so the
            # infra check runs on it: the ONNX export (when it converts with parity)
            # and monitoring's outlier model.
            from mlcycle.pipeline.steps.registry import _add_outlier_model
            from mlcycle.registry.export import try_export_bundle

            _add_outlier_model(folder, spec.train.seed)
            # onnx/ when the conversion passes parity on the holdout rows; never fails
            try_export_bundle(folder, load_split(project, inputs["splits"], "test"))
            return store.put(
                folder,
                kind="package",
                record={"name": project.name, "model": inputs["model"]},
                parents={"model": inputs["model"], "dataset": inputs["dataset"]},
            )


def _created_at(project: Project, model_id: str) -> str:
    from sqlalchemy import select

    from mlcycle.store import tables as t

    with project.store.engine.connect() as conn:
        value = conn.execute(select(t.artifacts.c.created_at).where(t.artifacts.c.id == model_id))
        return str(value.scalar())


__all__ = ["Evaluate", "Gate", "infra_check"]
