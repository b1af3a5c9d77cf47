"""The lifecycle steps: each reads artifacts, calls a stage, writes artifacts.

This is the only place where stages meet: a step loads its inputs from the
store, hands plain DataFrames and records to a stage function, and stores
what comes back with lineage edges to the inputs.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

import mlcycle
from mlcycle.artifacts import (
    Blessing,
    BundleMeta,
    DatasetVersion,
    Evaluation,
    Splits,
    TrainedModel,
    ValidationReport,
)
from mlcycle.errors import BadInput, NotFound
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.schema import Schema

ML_LIBS = ("scikit-learn", "numpy", "pandas", "scipy")


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def _dataset(project: Project, artifact_id: str) -> tuple[DatasetVersion, Path]:
    record = DatasetVersion.model_validate(project.store.record(artifact_id))
    return record, project.store.path(artifact_id) / "data.parquet"


class Ingest(Step):
    """Source → DatasetVersion (rows + the frozen data contract + profile)."""

    name = "ingest"
    sections = ("problem", "data")
    libraries = ("pandas", "pyarrow")

    def key_extra(self, project: Project) -> str:
        from mlcycle.data import fingerprint_source

        return fingerprint_source(project.spec.data.source, project.base_dir)

    def still_valid(self, project: Project, result: StepResult) -> bool:
        # The contract file is the user's to edit; an edit must re-freeze the version.
        return result.summary.get("schema_hash") == _file_hash(project.schema_path)

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.data import compute_profile, content_hash, infer_schema, read_source

        spec = project.spec
        df = read_source(spec.data.source, project.base_dir)
        ts = spec.problem.timestamp_column
        if ts and ts in df.columns and not pd.api.types.is_datetime64_any_dtype(df[ts]):
            try:
                df[ts] = pd.to_datetime(df[ts], utc=True)
            except (ValueError, TypeError) as exc:
                raise BadInput(
                    f"timestamp column '{ts}' does not parse as dates",
                    str(exc),
                    "fix the data or problem.timestamp_column",
                ) from exc
        inferred = infer_schema(df, spec.problem, spec.data.features)
        if project.schema_path.is_file():
            schema = _contract_with_roles(Schema.from_yaml(project.schema_path), inferred)
            origin = f"contract {project.schema_path.name}"
        else:
            schema = inferred
            schema.to_yaml(project.schema_path)
            origin = f"inferred, written to {project.schema_path.name}"
        profile = compute_profile(df, schema)
        record = DatasetVersion(
            rows=len(df),
            columns=list(df.columns),
            source=spec.data.source.path,
            source_fingerprint=self.key_extra(project),
            content_hash=content_hash(df),
            schema=schema,
            profile=profile,
        )
        with project.store.staging() as folder:
            df.to_parquet(folder / "data.parquet", index=False)
            dataset_id = project.store.put(folder, kind="dataset", record=record)
        return StepResult(
            {"dataset": dataset_id},
            {
                "rows": len(df),
                "columns": len(df.columns),
                "features": len(schema.features),
                "schema": origin,
                "schema_hash": _file_hash(project.schema_path),
                "dataset": dataset_id[:12],
            },
        )


def _contract_with_roles(contract: Schema, inferred: Schema) -> Schema:
    """The hand-editable contract, with roles taken from the spec (via fresh inference).

    The spec says which columns are features; the contract says what each
    column must look like. Columns only in the data stay out of the contract
    (validation reports them as extra).
    """
    roles = {c.name: c.role for c in inferred.columns}
    columns = [c.model_copy(update={"role": roles.get(c.name, c.role)}) for c in contract.columns]
    return Schema(columns=columns)


class Validate(Step):
    """DatasetVersion → ValidationReport; an error stops the pipeline."""

    name = "validate"
    inputs = ("dataset",)
    libraries = ("pandas",)

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.data import validate_frame

        record, data_path = _dataset(project, inputs["dataset"])
        df = pd.read_parquet(data_path)
        report: ValidationReport = validate_frame(df, record.schema_)
        with project.store.staging() as folder:
            (folder / "report.json").write_text(report.model_dump_json(indent=1))
            report_id = project.store.put(
                folder, kind="validation", record=report, parents={"dataset": inputs["dataset"]}
            )
        if not report.ok:
            shown = "; ".join(v.message for v in report.errors[:5])
            more = f" (+{len(report.errors) - 5} more)" if len(report.errors) > 5 else ""
            raise BadInput(
                f"dataset {inputs['dataset'][:12]} breaks the data contract",
                shown + more,
                f"fix the data, or edit {project.schema_path.name} if the change is intended; "
                f"the full report is artifact {report_id[:12]}",
            )
        warnings = [v.message for v in report.violations if v.severity == "warn"]
        return StepResult(
            {"validation": report_id},
            {"errors": 0, "warnings": len(warnings), "first_warnings": warnings[:3]},
        )


class Split(Step):
    """DatasetVersion → train / valid / test."""

    name = "split"
    inputs = ("dataset", "validation")
    sections = ("problem", "prepare")
    libraries = ("pandas", "numpy")

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.prep import split_frame

        spec = project.spec
        _, data_path = _dataset(project, inputs["dataset"])
        parts = split_frame(
            pd.read_parquet(data_path),
            spec.prepare.split,
            timestamp=spec.problem.timestamp_column,
            target=spec.problem.target,
            seed=spec.train.seed,
        )
        ts = spec.problem.timestamp_column
        ranges = {}
        if ts and spec.prepare.split.strategy == "time":
            ranges = {k: (str(v[ts].min()), str(v[ts].max())) for k, v in parts.items()}
        record = Splits(
            strategy=spec.prepare.split.strategy,
            rows={k: len(v) for k, v in parts.items()},
            time_ranges=ranges,
        )
        with project.store.staging() as folder:
            for name, part in parts.items():
                part.to_parquet(folder / f"{name}.parquet", index=False)
            splits_id = project.store.put(
                folder, kind="splits", record=record, parents={"dataset": inputs["dataset"]}
            )
        return StepResult({"splits": splits_id}, {"rows": record.rows})


def _split(project: Project, splits_id: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(project.store.path(splits_id) / f"{name}.parquet")


def _put_model(project: Project, fitted: Any, record: TrainedModel, parents: dict[str, str]) -> str:
    with project.store.staging() as folder:
        joblib.dump(fitted, folder / "model.joblib")
        return project.store.put(folder, kind="model", record=record, parents=parents)


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
        dataset, _ = _dataset(project, inputs["dataset"])
        train = _split(project, inputs["splits"], "train")
        valid = _split(project, inputs["splits"], "valid")
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

        model_id = _put_model(project, best.model, record(best, best_metrics), parents)
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
        baseline_id = _put_model(project, baseline.model, record(baseline, base_metrics), parents)
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


class Evaluate(Step):
    """Candidate and baseline → holdout metrics on the test split."""

    name = "evaluate"
    inputs = ("model", "baseline", "splits")
    sections = ("problem",)
    libraries = ML_LIBS

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.evaluate import compute_metrics

        problem = project.spec.problem
        test = _split(project, inputs["splits"], "test")
        y = test[problem.target].to_numpy()
        metrics = {}
        for role in ("model", "baseline"):
            scores, record = _score(project, inputs[role], test)
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


def _score(project: Project, model_id: str, rows: pd.DataFrame) -> tuple[np.ndarray, TrainedModel]:
    from mlcycle.evaluate import scores_for

    record = TrainedModel.model_validate(project.store.record(model_id))
    model = joblib.load(project.store.path(model_id) / "model.joblib")
    return scores_for(
        project.spec.problem.task, model, rows[record.features], project.spec.problem.positive_label
    ), record


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
            test = _split(project, inputs["splits"], "test")
            missing = [c for c in meta.features if c not in test.columns]
            if not missing:
                from mlcycle.evaluate import scores_for

                champion_model = joblib.load(folder / "model.joblib")
                champion_scores = scores_for(
                    problem.task, champion_model, test[meta.features], problem.positive_label
                )
                candidate_scores, record = _score(project, inputs["model"], test)
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
        dataset, _ = _dataset(project, inputs["dataset"])
        model = TrainedModel.model_validate(store.record(inputs["model"]))
        evaluation = Evaluation.model_validate(store.record(inputs["evaluation"]))
        blessing = Blessing.model_validate(store.record(inputs["blessing"]))
        train = _split(project, inputs["splits"], "train")
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


LIFECYCLE: list[Step] = [
    Ingest(),
    Validate(),
    Split(),
    Train(),
    Evaluate(),
    Gate(),
    Register(),
    Promote(),
]
