"""Data steps: ingest a source into a dataset version, validate it, split it."""

from __future__ import annotations

import pandas as pd

from mlcycle.artifacts import (
    DatasetVersion,
    Splits,
    ValidationReport,
)
from mlcycle.errors import BadInput
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.common import (
    file_hash,
    load_dataset,
)
from mlcycle.schema import Schema


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
        return result.summary.get("schema_hash") == file_hash(project.schema_path)

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
                "schema_hash": file_hash(project.schema_path),
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

        record, data_path = load_dataset(project, inputs["dataset"])
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
        _, data_path = load_dataset(project, inputs["dataset"])
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
