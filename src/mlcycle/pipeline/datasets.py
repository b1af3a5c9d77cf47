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
from typing import TYPE_CHECKING, Any

from mlcycle.artifacts import ValidationReport
from mlcycle.errors import BadInput
from mlcycle.pipeline.context import HasContext, RunContext
from mlcycle.schema import Schema

if TYPE_CHECKING:
    from mlcycle.data.landing import Partition


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


def quarantine_notes(ctx: RunContext) -> list[str]:
    """One line per quarantined partition of the source: what, why, and how to fix or accept.

    The reason is that of the newest invalid version holding the partition, so
    `mlcycle run` can say why newer data is left out instead of going quiet.

    Example:
        >>> quarantine_notes(ctx)
        ['main/ingested_at=…/part-0.parquet (50 rows) is quarantined and left out: …']
    """
    from mlcycle.data.landing import QUARANTINED, statuses

    source = ctx.spec.data.source.name
    held = [p for p in ctx.catalog.partitions(source) if p.status == QUARANTINED]
    if not held:
        return []
    invalid = [
        (dataset_id, row.get("reason"), set(ctx.catalog.dataset(dataset_id).partitions))
        for dataset_id, row in statuses(ctx.store).items()
        if row["source"] == source and row["status"] == "invalid"
    ]
    invalid.sort(key=lambda v: ctx.catalog.created_at(v[0]), reverse=True)
    notes = []
    for p in held:
        version, why = next(
            ((d, r) for d, r, parts in invalid if p.content_hash in parts), (p.id, None)
        )
        notes.append(
            f"{p.path} ({p.rows:,} rows) is quarantined and left out: "
            f"{why or 'its version failed validation'} — fix the source data, or if the change "
            f"is intended edit {ctx.schema_path.name} / data.expectations, then "
            f'`mlcycle data accept {version[:12]} --reason "…"`'
        )
    return notes


def note_quarantine(ctx: RunContext, summary: dict[str, Any]) -> None:
    """Put :func:`quarantine_notes` in an ingest summary as ``quarantine`` (none: no key).

    Left-out data must not vanish from view: the Ingest step calls this on every
    run, cached ones too, so `mlcycle run` always says what is quarantined.
    """
    summary.pop("quarantine", None)
    notes = quarantine_notes(ctx)
    if notes:
        summary["quarantine"] = notes


def _names(path: str) -> set[str]:
    # main/ingested_at=STAMP/part-0.parquet: the path, its folder with or without the
    # source, and the stamp alone all name the partition.
    folder = path.rsplit("/", 1)[0]
    last = folder.rsplit("/", 1)[-1]
    return {path, folder, last, last.split("=", 1)[-1]}


def _chosen(ctx: RunContext, every: list[Partition], target: str) -> list[Partition]:
    """The quarantined partitions ``target`` names: a partition (id prefix, path or
    ``ingested_at=`` folder) or a dataset version (id prefix: the partitions it holds)."""
    from mlcycle.data.landing import QUARANTINED
    from mlcycle.errors import MlcycleError

    wanted = target.strip().strip("/")
    named = [
        p
        for p in every
        if (len(wanted) >= 6 and p.id.startswith(wanted)) or wanted in _names(p.path)
    ]
    if not named:
        try:
            dataset_id = ctx.store.resolve(wanted, kind="dataset")
        except MlcycleError as exc:
            raise BadInput(
                f"no partition or dataset version '{target}'",
                "accept takes a raw partition (id prefix or ingested_at= folder) or a dataset "
                "version id prefix (≥ 6 characters)",
                "see `mlcycle data versions`, or the partition `mlcycle run` names",
            ) from exc
        held = set(ctx.catalog.dataset(dataset_id).partitions)
        named = [p for p in every if p.content_hash in held]
    chosen = [p for p in named if p.status == QUARANTINED]
    if not chosen:
        raise BadInput(
            f"'{target}' is not quarantined",
            "its partitions are already in use",
            "nothing to accept; `mlcycle run` lists the quarantined partitions",
        )
    return chosen


def accept_quarantined(
    ctx: RunContext, target: str, *, reason: str, by: str
) -> tuple[list[Partition], str, str]:
    """Re-validate quarantined partitions against the current contract; take them back only
    if the version that includes them now passes. Return (partitions, dataset, report).

    Never blind: the version is built as the next ingest would build it (the usable
    partitions plus these, frozen with the contract file as it is now) and validated;
    on an error nothing changes and ``BadInput`` says why.

    Example:
        >>> parts, dataset_id, report_id = accept_quarantined(ctx, "07fd5f", reason="new route",
        ...                                                   by="ana")
    """
    import pandas as pd

    from mlcycle import data
    from mlcycle.data.build import storable
    from mlcycle.data.landing import QUARANTINED, RawRoot, accept
    from mlcycle.store import now

    source = ctx.spec.data.source
    every = ctx.catalog.partitions(source.name)
    chosen = _chosen(ctx, every, target)
    ids = {p.id for p in chosen}
    if not ctx.schema_path.is_file():
        raise BadInput(
            f"no contract at {ctx.schema_path.name}",
            "a partition is accepted only against the contract it now meets",
            "run `mlcycle data schema --propose --write` and settle the contract first",
        )
    if source.watermark is None:
        # Snapshot mode builds from the newest snapshot alone; an older one is never used.
        if every[-1].id not in ids:
            raise BadInput(
                f"'{target}' is an older snapshot",
                "without data.source.watermark only the newest snapshot is built from",
                "accept the newest snapshot, or change the source so a new one is ingested",
            )
        parts = [every[-1]]
    else:
        parts = [p for p in every if p.status != QUARANTINED or p.id in ids]
    root = RawRoot(ctx.store)
    frames = [root.read(p) for p in parts]
    raw = storable(frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))
    record, frame = data.build_version(
        raw,
        parts,
        problem=ctx.spec.problem,
        data=ctx.spec.data,
        base_dir=ctx.base_dir,
        contract=Schema.from_yaml(ctx.schema_path),
    )
    dataset_id = ctx.catalog.save_dataset(record, frame)
    report, report_id = validate_dataset(ctx, dataset_id)
    if not report.ok:
        raise BadInput(
            f"{', '.join(p.path for p in chosen)} still breaks the data contract",
            "; ".join(v.message for v in report.errors[:5]),
            f"nothing was accepted; edit {ctx.schema_path.name} / data.expectations to allow "
            f"the change, or fix the source data (report: mlcycle data validate "
            f"{dataset_id[:12]})",
        )
    audit = {
        "by": by,
        "at": now(),
        "reason": reason,
        "dataset": dataset_id,
        "validation": report_id,
    }
    accept(ctx.store, [p.id for p in chosen], audit=audit)
    return chosen, dataset_id, report_id
