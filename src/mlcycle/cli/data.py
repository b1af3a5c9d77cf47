"""`mlcycle data …`: ingest, dataset versions, their contract, validation, profile and report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    err_console,
    handle_errors,
    load_project,
    print_json,
)
from mlcycle.cli.data_inspect import profile, report
from mlcycle.cli.data_versions import VersionArg, dataset_record, dataset_versions, resolve_dataset
from mlcycle.errors import BadInput, StepFailed

app = typer.Typer(
    help="Data: ingest, dataset versions, their schema, validation, profile and report.",
    no_args_is_help=True,
)


@app.command()
@handle_errors
def ingest(
    spec: Path = SpecOption,
    land_only: bool = typer.Option(
        False, "--land-only", help="Only land new rows; do not build and validate a version."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Read what is new in the source, land it as a raw partition, build and validate a version.

    With data.source.watermark set only rows newer than the last ingest are read;
    rows whose id was seen before are dropped. Nothing landed is ever rewritten.

    Example: mlcycle data ingest
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from mlcycle.data.ingest import decode_watermark, ingest

    project = load_project(spec)
    source = project.spec.data.source
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=True
    ) as bar:
        task = bar.add_task(f"ingesting {source.shown}…")

        def progress(rows: int) -> None:
            bar.update(task, description=f"ingesting {source.shown}: {rows:,} rows read")

        result = ingest(
            project.store,
            source,
            project.base_dir,
            id_column=project.spec.problem.id_column,
            progress=progress,
        )
    out: dict[str, Any] = {"ingest": result.to_dict()}
    failure: StepFailed | None = None
    if not land_only:
        try:
            run = project.run(until="validate")
            out["dataset"] = run.outputs.get("dataset")
            out["status"] = "valid"
        except StepFailed as exc:
            failure = exc
            run_report = getattr(exc, "run", None)
            out["dataset"] = run_report.outputs.get("dataset") if run_report else None
            out["status"] = "invalid" if exc.step == "validate" else "failed"
            out["error"] = exc.to_dict()
    if as_json:
        print_json(out)
    else:
        mark = result.watermark_after
        shown = decode_watermark(mark) if mark else "—"
        if result.partition is None:
            console.print(f"[cyan]{result.note}[/] (watermark {shown})", highlight=False)
        else:
            console.print(
                f"[green]landed[/] {result.rows_new:,} new row(s) of {result.rows_read:,} read "
                f"in {result.seconds:.2f}s → {result.partition.path} (watermark {shown})",
                highlight=False,
            )
        for line in result.warnings:
            console.print(f"  [yellow]warn:[/] {line}", highlight=False)
        if out.get("dataset"):
            colour = "green" if out["status"] == "valid" else "red"
            console.print(
                f"dataset version {str(out['dataset'])[:12]}: [{colour}]{out['status']}[/]"
            )
    if failure is not None:
        raise failure


@app.command()
@handle_errors
def versions(spec: Path = SpecOption, as_json: bool = JsonOption) -> None:
    """List dataset versions, newest first, with their validation status.

    An invalid version is kept (quarantined) and never trained on.

    Example: mlcycle data versions
    """
    project = load_project(spec)
    data = dataset_versions(project)
    if as_json:
        print_json(data)
        return
    table = Table(title="dataset versions")
    for col in ("id", "created", "rows", "columns", "partitions", "status", "source"):
        table.add_column(col)
    for d in data:
        colour = {"valid": "green", "invalid": "red"}.get(d["status"], "yellow")
        table.add_row(
            d["id"][:12],
            d["created_at"],
            str(d["rows"]),
            str(d["columns"]),
            str(d["partitions"]),
            f"[{colour}]{d['status']}[/]",
            d["source"],
        )
    console.print(table)


@app.command()
@handle_errors
def show(
    version: str | None = VersionArg,
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a dataset version: its status, contract and column profile.

    Example: mlcycle data show 3f2a9c
    """
    from mlcycle.data.landing import status_of

    project = load_project(spec)
    artifact_id = resolve_dataset(project, version)
    record = project.store.record(artifact_id)
    status = status_of(project.store, artifact_id)
    if as_json:
        print_json({"id": artifact_id, "status": status, **record})
        return
    state = status["status"] if status else "unvalidated"
    console.print(
        f"[bold]dataset {artifact_id[:12]}[/] rows={record['rows']} source={record['source']} "
        f"partitions={len(record.get('partitions', []))} status={state}",
        highlight=False,
    )
    if status and status.get("reason"):
        console.print(f"  [red]{status['reason']}[/]", highlight=False)
    profile = {c["name"]: c for c in record["profile"]["columns"]}
    table = Table()
    for col in ("column", "kind", "role", "nulls", "min", "max", "mean", "top"):
        table.add_column(col)
    for c in record["schema"]["columns"]:
        p = profile.get(c["name"], {})
        top = ", ".join(list(p.get("top", {}))[:3])
        mean = p.get("mean")
        table.add_row(
            c["name"],
            c["kind"],
            c["role"],
            str(p.get("nulls", "")),
            str(c.get("min") if c.get("min") is not None else ""),
            str(c.get("max") if c.get("max") is not None else ""),
            "" if mean is None else f"{mean:.3g}",
            top,
        )
    console.print(table)


@app.command()
@handle_errors
def diff(
    old: str = typer.Argument(..., help="The older dataset version (id prefix)."),
    new: str = typer.Argument(..., help="The newer dataset version (id prefix)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Compare two versions: rows added/removed, schema changes, distribution distance.

    Example: mlcycle data diff 3f2a9c 8b1e07
    """

    from mlcycle.data.compare import (
        data_changes,
        profile_distances,
        row_changes,
        schema_changes,
    )

    project = load_project(spec)
    ids = [resolve_dataset(project, old), resolve_dataset(project, new)]
    a, b = (dataset_record(project, i) for i in ids)
    frames = [project.catalog.dataset_frame(i) for i in ids]
    rows = row_changes(frames[0], frames[1], project.spec.problem.id_column)
    changes = schema_changes(a.schema_, b.schema_) + data_changes(frames[0], frames[1])
    distances = profile_distances(a.profile, b.profile)
    if as_json:
        print_json(
            {"old": ids[0], "new": ids[1], "rows": rows, "schema": changes, "distance": distances}
        )
        return
    console.print(
        f"[bold]{ids[0][:12]} → {ids[1][:12]}[/]: +{rows['added']} rows, -{rows['removed']} rows, "
        f"{rows['kept']} kept",
        highlight=False,
    )
    for line in changes or ["(no schema changes)"]:
        console.print(f"  {line}", highlight=False)
    table = Table(title="distribution distance (Jensen–Shannon, 0 = same, 1 = disjoint)")
    table.add_column("column")
    table.add_column("distance", justify="right")
    for name, value in sorted(distances.items(), key=lambda kv: -(kv[1] or 0)):
        table.add_row(name, "—" if value is None else f"{value:.3f}")
    console.print(table)


@app.command()
@handle_errors
def schema(
    propose: bool = typer.Option(
        False, "--propose", help="Infer from the newest version and show changes to the contract."
    ),
    write: bool = typer.Option(
        False, "--write", help="With --propose: write the proposal to schema.proposed.yaml."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Show the data contract (schema.yaml), or propose changes inferred from the newest data.

    The contract is yours to edit; inference never overwrites it.

    Example: mlcycle data schema --propose
    """

    from mlcycle.data import infer_schema
    from mlcycle.data.compare import schema_changes
    from mlcycle.schema import Schema

    project = load_project(spec)
    path = project.schema_path
    if not path.is_file():
        raise BadInput(
            f"no contract at {path.name} yet",
            "it is inferred at the first ingest",
            "run `mlcycle data ingest` or `mlcycle run`",
        )
    contract = Schema.from_yaml(path)
    if not propose:
        if as_json:
            print_json(contract.model_dump(mode="json"))
        else:
            console.print(path.read_text(encoding="utf-8"), highlight=False)
        return
    artifact_id = resolve_dataset(project, None)
    df = project.catalog.dataset_frame(artifact_id)
    proposed = infer_schema(df, project.spec.problem, project.spec.data.features)
    changes = schema_changes(contract, proposed)
    target = path.with_name("schema.proposed.yaml")
    if write:
        proposed.to_yaml(target)
    if as_json:
        print_json(
            {"dataset": artifact_id, "changes": changes, "written": str(target) if write else None}
        )
        return
    console.print(f"[bold]{path.name}[/] vs inferred from dataset {artifact_id[:12]}:")
    for line in changes or ["(the contract matches the data)"]:
        console.print(f"  {line}", highlight=False)
    if write:
        console.print(f"wrote {target}; review it and copy what you accept into {path.name}")


@app.command()
@handle_errors
def validate(
    version: str | None = VersionArg,
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Validate a dataset version against the contract and data.expectations.

    Exit code 2 when an error is found (the version is then quarantined).

    Example: mlcycle data validate --json
    """
    from mlcycle.pipeline.steps.data import validate_dataset

    project = load_project(spec)
    artifact_id = resolve_dataset(project, version)
    report, report_id = validate_dataset(project, artifact_id)
    if as_json:
        print_json(
            {
                "dataset": artifact_id,
                "report": report_id,
                "ok": report.ok,
                **report.model_dump(mode="json"),
            }
        )
    else:
        state = "[green]valid[/]" if report.ok else "[red]invalid (quarantined)[/]"
        console.print(f"dataset {artifact_id[:12]}: {state}, {report.rows} rows")
        table = Table()
        for col in ("severity", "check", "column", "message"):
            table.add_column(col)
        for v in report.violations:
            colour = "red" if v.severity == "error" else "yellow"
            table.add_row(f"[{colour}]{v.severity}[/]", v.check, v.column or "", v.message)
        if report.violations:
            console.print(table)
    if not report.ok:
        raise typer.Exit(2)


@app.command()
@handle_errors
def accept(
    target: str = typer.Argument(
        ...,
        help="A quarantined raw partition (id prefix or ingested_at= folder) or the "
        "dataset version (id prefix) that quarantined it.",
    ),
    reason: str = typer.Option(
        "", "--reason", help="Why the change is accepted (required; kept with the partition)."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Take quarantined data back after editing the contract: re-validated, never blindly.

    The version the next ingest would build (the usable partitions plus these) is
    built with the contract file as it is now and validated; the partitions leave
    quarantine only if it passes. Who, when and why are recorded with them.

    Example: mlcycle data accept 07fd5f2ba5e2 --reason "BOS is a new route"
    """
    import getpass

    from mlcycle.pipeline.datasets import accept_quarantined

    if not reason.strip():
        raise BadInput(
            "no --reason given",
            "accepting data the contract refused is recorded with who, when and why",
            'pass --reason "…" (e.g. --reason "BOS is a new route")',
        )
    project = load_project(spec)
    try:
        by = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        by = "unknown"
    parts, dataset_id, report_id = accept_quarantined(
        project.context(), target, reason=reason.strip(), by=by
    )
    if as_json:
        print_json(
            {
                "accepted": [p.summary() | {"status": "landed"} for p in parts],
                "dataset": dataset_id,
                "validation": report_id,
                "status": "valid",
                "by": by,
                "reason": reason.strip(),
            }
        )
        return
    for p in parts:
        console.print(f"[green]accepted[/] {p.path} ({p.rows:,} rows)", highlight=False)
    console.print(
        f"dataset version {dataset_id[:12]}: [green]valid[/] against {project.schema_path.name}; "
        "the next `mlcycle run` trains on it",
        highlight=False,
    )


app.command()(profile)
app.command()(report)
