"""Data steps: ingest a source into a dataset version, validate it, split it."""

from __future__ import annotations

from mlcycle import prep
from mlcycle.errors import BadInput
from mlcycle.pipeline.catalog import Inputs
from mlcycle.pipeline.context import RunContext
from mlcycle.pipeline.datasets import build_version, file_hash, note_quarantine, validate_dataset
from mlcycle.pipeline.runner import Step, StepResult

# `mlcycle data validate` runs the Validate step's work on any stored version.
__all__ = ["Ingest", "Split", "Validate", "validate_dataset"]


class Ingest(Step):
    """Source → new raw partition (if anything is new) → DatasetVersion.

    The version is built from every usable landed partition plus the declared
    transforms, with the frozen data contract and the profile.
    """

    name = "ingest"
    outputs = ("dataset",)
    sections = ("problem", "data")
    libraries = ("pandas", "pyarrow", "duckdb")
    revision = 3  # 3: numbers held as text are stored as numbers

    def key_extra(self, ctx: RunContext) -> str:
        from mlcycle.data.ingest import source_fingerprint
        from mlcycle.data.transform import transforms_hash

        spec = ctx.spec.data
        return source_fingerprint(spec.source, ctx.base_dir) + transforms_hash(
            spec.transforms, ctx.base_dir
        )

    def still_valid(self, ctx: RunContext, result: StepResult) -> bool:
        from mlcycle.data.landing import partitions_hash

        # The contract file is the user's to edit; an edit must re-freeze the version.
        if result.summary.get("schema_hash") != file_hash(ctx.schema_path):
            return False
        # A partition landed by `mlcycle data ingest`, or quarantined since, changes
        # what the version must hold.
        every = ctx.catalog.partitions(ctx.spec.data.source.name)
        if result.summary.get("partitions_hash") != partitions_hash(every)[:16]:
            return False
        # Reused, this result landed and wrote nothing in this run: restate its summary
        # as of now (the contract file exists and is what the version was frozen with).
        for done_then in ("new_rows", "first_warnings"):
            result.summary.pop(done_then, None)
        result.summary["schema"] = f"contract {ctx.schema_path.name}"
        note_quarantine(ctx, result.summary)
        return True

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        spec = ctx.spec
        landed = ctx.catalog.land(spec.data.source, ctx.base_dir, id_column=spec.problem.id_column)
        dataset_id, summary = build_version(ctx)
        summary["new_rows"] = landed.rows_new
        if landed.warnings:
            summary["first_warnings"] = landed.warnings[:3]
        note_quarantine(ctx, summary)
        return StepResult({"dataset": dataset_id}, summary)


class Validate(Step):
    """DatasetVersion → ValidationReport; an error quarantines the version and stops."""

    name = "validate"
    inputs = ("dataset",)
    outputs = ("validation",)
    sections = ("data",)
    libraries = ("pandas",)
    revision = 3  # 3: text in a numeric column is an error with count and examples

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        dataset_id = inputs.id("dataset")
        report, report_id = validate_dataset(ctx, dataset_id)
        if not report.ok:
            shown = "; ".join(v.message for v in report.errors[:5])
            more = f" (+{len(report.errors) - 5} more)" if len(report.errors) > 5 else ""
            raise BadInput(
                f"dataset {dataset_id[:12]} breaks the data contract",
                shown + more,
                f"the version is quarantined and will not be trained on; fix the data, or edit "
                f"{ctx.schema_path.name} / data.expectations if the change is intended, then "
                f'`mlcycle data accept {dataset_id[:12]} --reason "…"`; '
                f"the full report is artifact {report_id[:12]} "
                f"(mlcycle data validate {dataset_id[:12]})",
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
    outputs = ("splits",)
    sections = ("problem", "prepare")
    libraries = ("pandas", "numpy")
    revision = 3  # 2: ids / groups in two splits reported; 3: features leaving their range

    def key_extra(self, ctx: RunContext) -> str:
        seasonal = ",".join(sorted(ctx.spec.data.features.seasonal))  # not range-checked
        extra = f"seasonal:{seasonal}" if seasonal else ""
        return ctx.window_key() + extra  # window "" (all rows): `mlcycle run`'s cache

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        spec = ctx.spec
        dataset_id = inputs.id("dataset")
        status = ctx.catalog.dataset_status(dataset_id)
        if status is None or status["status"] != "valid":
            raise BadInput(
                f"dataset {dataset_id[:12]} is not a valid version",
                (status or {}).get("reason") or "it was never validated",
                "only a version that passed validation is split and trained on",
            )
        record, frames = prep.split_dataset(
            ctx.in_window(inputs.dataset_frame()),  # the loop's training window, if any
            spec.prepare.split,
            timestamp=spec.problem.timestamp_column,
            target=spec.problem.target,
            seed=spec.train.seed,
        )
        splits_id = ctx.catalog.save_splits(record, frames, dataset_id=dataset_id)
        shared = [spec.problem.id_column, spec.prepare.split.group_column]  # in two splits?
        found = prep.split_overlap(frames, shared)
        summary: dict[str, object] = {"rows": record.rows} | ({"overlap": found} if found else {})
        if spec.prepare.split.strategy == "time":  # later values outside the training range?
            schema, seasonal = inputs.dataset.schema_, spec.data.features.seasonal
            summary |= prep.range_summary(frames, schema, spec.problem.timestamp_column, seasonal)
        return StepResult({"splits": splits_id}, summary)
