"""The data stages against the project: build a dataset version from what landed, validate
a stored version and record the verdict.

These compose the catalog (landed partitions, versions, statuses) with the data
stage's functions (:func:`mlcycle.data.build_version`,
:func:`mlcycle.data.validate_version`) and the project's contract file; the
Ingest and Validate steps call them, and so does ``mlcycle data validate``.

Example:
    >>> dataset_id, summary = build_version(project.context())
    >>> report, report_id = validate_dataset(project, dataset_id)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from mlcycle.artifacts import ValidationReport
from mlcycle.pipeline.context import HasContext, RunContext
from mlcycle.schema import Schema


def file_hash(path: Path) -> str:
    """The sha256 of a file's bytes, or ``absent``.

    Example:
        >>> file_hash(Path("no-such-file"))
        'absent'
    """
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def build_version(ctx: RunContext) -> tuple[str, dict[str, Any]]:
    """Build and store the dataset version of the usable partitions; return (id, summary).

    The contract file is the project's: read when it exists, else written from
    the inferred schema for the user to edit.

    Example:
        >>> dataset_id, summary = build_version(project.context())
        >>> summary["schema"]
        'contract schema.yaml'
    """
    from mlcycle import data
    from mlcycle.data.landing import partitions_hash

    spec, catalog, schema_path = ctx.spec, ctx.catalog, ctx.schema_path
    parts, raw = catalog.raw(spec.data.source)
    contract = Schema.from_yaml(schema_path) if schema_path.is_file() else None
    record, frame = data.build_version(
        raw,
        parts,
        problem=spec.problem,
        data=spec.data,
        base_dir=ctx.base_dir,
        contract=contract,
    )
    if contract is None:
        record.schema_.to_yaml(schema_path)
        origin = f"inferred, written to {schema_path.name}"
    else:
        origin = f"contract {schema_path.name}"
    dataset_id = catalog.save_dataset(record, frame)
    every = catalog.partitions(spec.data.source.name)
    return dataset_id, {
        "rows": record.rows,
        "columns": len(record.columns),
        "features": len(record.schema_.features),
        "partitions": len(parts),
        "quarantined": sum(1 for p in every if p.status == "quarantined"),
        "schema": origin,
        "schema_hash": file_hash(schema_path),
        "partitions_hash": partitions_hash(every)[:16],
        "dataset": dataset_id[:12],
    }


def validate_dataset(project: HasContext, dataset_id: str) -> tuple[ValidationReport, str]:
    """Validate a stored version, store the report, and record valid/quarantined.

    On errors the version is marked invalid and the raw partitions it added
    since the last valid version are quarantined, so no later version (and no
    training run) includes them.

    Example:
        >>> report, report_id = validate_dataset(project, dataset_id)
        >>> report.ok
        True
    """
    from mlcycle import data

    ctx = project.context()
    catalog = ctx.catalog
    record = catalog.dataset(dataset_id)
    previous = catalog.previous_valid(record.source_name, excluding=dataset_id)
    known = set(previous.partitions) if previous else set()
    wanted = set(record.partitions)
    parts = [p for p in catalog.partitions(record.source_name) if p.content_hash in wanted]
    added = [p for p in parts if p.content_hash not in known]
    report = data.validate_version(
        catalog.dataset_frame(dataset_id),
        record,
        expectations=ctx.spec.data.expectations,
        previous=previous,
        added=added,
        id_column=ctx.spec.problem.id_column,
    )
    quarantine: list[str] = []
    if not report.ok and ctx.spec.data.source.watermark is not None:
        quarantine = [p.id for p in added]
    elif not report.ok and parts:
        quarantine = [parts[-1].id]
    report_id = catalog.save_validation(
        report, dataset_id=dataset_id, record=record, quarantine=quarantine
    )
    return report, report_id
