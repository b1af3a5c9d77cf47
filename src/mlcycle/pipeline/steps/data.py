"""Data steps: ingest a source into a dataset version, validate it, split it."""

from __future__ import annotations

from typing import Any

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
    """Source → new raw partition (if anything is new) → DatasetVersion.

    The version is built from every usable landed partition plus the declared
    transforms, with the frozen data contract and the profile.
    """

    name = "ingest"
    sections = ("problem", "data")
    libraries = ("pandas", "pyarrow", "duckdb")
    revision = 2

    def key_extra(self, project: Project) -> str:
        from mlcycle.data.ingest import source_fingerprint
        from mlcycle.data.transform import transforms_hash

        data = project.spec.data
        return source_fingerprint(data.source, project.base_dir) + transforms_hash(
            data.transforms, project.base_dir
        )

    def still_valid(self, project: Project, result: StepResult) -> bool:
        from mlcycle.data.landing import list_partitions, partitions_hash

        # The contract file is the user's to edit; an edit must re-freeze the version.
        if result.summary.get("schema_hash") != file_hash(project.schema_path):
            return False
        # A partition landed by `mlcycle data ingest`, or quarantined since, changes
        # what the version must hold.
        current = partitions_hash(list_partitions(project.store, project.spec.data.source.name))
        return bool(result.summary.get("partitions_hash") == current[:16])

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.data.ingest import ingest

        spec = project.spec
        landed = ingest(
            project.store,
            spec.data.source,
            project.base_dir,
            id_column=spec.problem.id_column,
        )
        dataset_id, summary = build_version(project)
        summary["new_rows"] = landed.rows_new
        if landed.warnings:
            summary["first_warnings"] = landed.warnings[:3]
        return StepResult({"dataset": dataset_id}, summary)


def build_version(project: Project) -> tuple[str, dict[str, Any]]:
    """Build and store the dataset version of the usable partitions; return (id, summary)."""
    from mlcycle.data import compute_profile, content_hash, infer_schema
    from mlcycle.data.build import lineage_hash, raw_frame, storable
    from mlcycle.data.landing import list_partitions, partitions_hash
    from mlcycle.data.transform import apply_transforms, transforms_hash

    spec = project.spec
    source = spec.data.source
    parts, df = raw_frame(project.store, source)
    if spec.data.transforms:
        df = storable(apply_transforms(df, spec.data.transforms, project.base_dir))
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
    code = transforms_hash(spec.data.transforms, project.base_dir)
    record = DatasetVersion(
        rows=len(df),
        columns=[str(c) for c in df.columns],
        source=source.shown,
        source_fingerprint=lineage_hash(parts, code, project.base_dir),
        content_hash=content_hash(df),
        schema=schema,
        profile=profile,
        source_name=source.name,
        partitions=[p.content_hash for p in parts],
        transforms_hash=code,
    )
    with project.store.staging() as folder:
        df.to_parquet(folder / "data.parquet", index=False)
        dataset_id = project.store.put(folder, kind="dataset", record=record)
    every = list_partitions(project.store, source.name)
    return dataset_id, {
        "rows": len(df),
        "columns": len(df.columns),
        "features": len(schema.features),
        "partitions": len(parts),
        "quarantined": sum(1 for p in every if p.status == "quarantined"),
        "schema": origin,
        "schema_hash": file_hash(project.schema_path),
        "partitions_hash": partitions_hash(every)[:16],
        "dataset": dataset_id[:12],
    }


def _contract_with_roles(contract: Schema, inferred: Schema) -> Schema:
    """The hand-editable contract, with roles taken from the spec (via fresh inference).

    The spec says which columns are features; the contract says what each
    column must look like. Columns only in the data stay out of the contract
    (validation reports them as extra). Inference may call a column "ignored"
    only because its values changed kind (a retyped numeric column looks like
    free text); the contract's kind decides then, so the change is reported
    instead of the column silently dropping out of the model.
    """
    inferred_by_name = {c.name: c for c in inferred.columns}
    columns = []
    for col in contract.columns:
        fresh = inferred_by_name.get(col.name)
        role = col.role if fresh is None else fresh.role
        retyped = fresh is not None and fresh.kind == "string" and col.kind != "string"
        if retyped and fresh is not None and fresh.role == "ignored" and col.role != "ignored":
            role = col.role
        columns.append(col.model_copy(update={"role": role}))
    return Schema(columns=columns)


class Validate(Step):
    """DatasetVersion → ValidationReport; an error quarantines the version and stops."""

    name = "validate"
    inputs = ("dataset",)
    sections = ("data",)
    libraries = ("pandas",)
    revision = 2

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        report, report_id = validate_dataset(project, inputs["dataset"])
        if not report.ok:
            shown = "; ".join(v.message for v in report.errors[:5])
            more = f" (+{len(report.errors) - 5} more)" if len(report.errors) > 5 else ""
            raise BadInput(
                f"dataset {inputs['dataset'][:12]} breaks the data contract",
                shown + more,
                f"the version is quarantined and will not be trained on; fix the data, or edit "
                f"{project.schema_path.name} / data.expectations if the change is intended; "
                f"the full report is artifact {report_id[:12]} "
                f"(mlcycle data validate {inputs['dataset'][:12]})",
            )
        warnings = [v.message for v in report.violations if v.severity == "warn"]
        return StepResult(
            {"validation": report_id},
            {"errors": 0, "warnings": len(warnings), "first_warnings": warnings[:3]},
        )


def validate_dataset(project: Project, dataset_id: str) -> tuple[ValidationReport, str]:
    """Validate a stored version, store the report, and record valid/quarantined.

    On errors the version is marked invalid and the raw partitions it added
    since the last valid version are quarantined, so no later version (and no
    training run) includes them.
    """
    from mlcycle.data import validate_frame
    from mlcycle.data.expect import check_expectations
    from mlcycle.data.landing import (
        list_partitions,
        previous_valid,
        quarantine,
        set_status,
    )
    from mlcycle.schema import Violation

    store = project.store
    record, data_path = load_dataset(project, dataset_id)
    df = pd.read_parquet(data_path)
    previous_id = previous_valid(store, record.source_name, excluding=dataset_id)
    previous = None
    if previous_id is not None:
        previous = DatasetVersion.model_validate(store.record(previous_id))
    violations = list(validate_frame(df, record.schema_).violations)
    violations += check_expectations(
        df, project.spec.data.expectations, record.profile, previous.profile if previous else None
    )
    known = set(previous.partitions) if previous else set()
    parts = [
        p
        for p in list_partitions(store, record.source_name)
        if p.content_hash in set(record.partitions)
    ]
    added = [p for p in parts if p.content_hash not in known]
    for part in added:
        details = part.details
        if details.get("bad_line_count"):
            violations.append(
                Violation(
                    column=None,
                    check="malformed",
                    severity="warn",
                    message=f"{details['bad_line_count']} malformed CSV line(s) were skipped at "
                    f"ingest, e.g. lines {details.get('bad_lines', [])[:5]}",
                    count=int(details["bad_line_count"]),
                )
            )
        if details.get("duplicates"):
            violations.append(
                Violation(
                    column=project.spec.problem.id_column,
                    check="duplicate",
                    severity="warn",
                    message=f"{details['duplicates']} row(s) repeating an id were dropped at "
                    "ingest",
                    count=int(details["duplicates"]),
                )
            )
    report = ValidationReport(rows=len(df), violations=violations)
    with store.staging() as folder:
        (folder / "report.json").write_text(report.model_dump_json(indent=1))
        report_id = store.put(
            folder, kind="validation", record=report, parents={"dataset": dataset_id}
        )
    reason = None if report.ok else "; ".join(v.message for v in report.errors[:5])
    set_status(
        store,
        dataset_id,
        source=record.source_name,
        valid=report.ok,
        validation_id=report_id,
        reason=reason,
    )
    if not report.ok and project.spec.data.source.watermark is not None:
        quarantine(store, [p.id for p in added])
    elif not report.ok and parts:
        quarantine(store, [parts[-1].id])
    return report, report_id


class Split(Step):
    """DatasetVersion → train / valid / test."""

    name = "split"
    inputs = ("dataset", "validation")
    sections = ("problem", "prepare")
    libraries = ("pandas", "numpy")

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.data.landing import status_of
        from mlcycle.prep import split_frame

        spec = project.spec
        status = status_of(project.store, inputs["dataset"])
        if status is None or status["status"] != "valid":
            raise BadInput(
                f"dataset {inputs['dataset'][:12]} is not a valid version",
                (status or {}).get("reason") or "it was never validated",
                "only a version that passed validation is split and trained on",
            )
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
