"""`mlcycle data profile|report`: a dataset version's column profile and HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    handle_errors,
    load_project,
    print_json,
)
from mlcycle.cli.data_versions import VersionArg, dataset_record, resolve_dataset


@handle_errors
def profile(
    version: str | None = VersionArg,
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a version's column profile (count, nulls, mean, std, quantiles, top values).

    Example: mlcycle data profile --json
    """
    project = load_project(spec)
    artifact_id = resolve_dataset(project, version)
    record = dataset_record(project, artifact_id)
    if as_json:
        print_json({"dataset": artifact_id, **record.profile.model_dump(mode="json")})
        return
    table = Table(title=f"profile of {artifact_id[:12]} ({record.profile.rows} rows)")
    for col in (
        "column",
        "kind",
        "count",
        "nulls",
        "mean",
        "std",
        "p05",
        "p50",
        "p95",
        "distinct/top",
    ):
        table.add_column(col)

    def num(v: float | None) -> str:
        return "" if v is None else f"{v:.4g}"

    for c in record.profile.columns:
        ranked = sorted(c.top.items(), key=lambda kv: -kv[1])[:3]
        top = ", ".join(f"{k}:{n}" for k, n in ranked)
        table.add_row(
            c.name,
            c.kind,
            str(c.count),
            str(c.nulls),
            num(c.mean),
            num(c.std),
            num(c.quantiles.get("0.05")),
            num(c.quantiles.get("0.5")),
            num(c.quantiles.get("0.95")),
            f"{c.distinct} ({top})" if c.distinct is not None else "",
        )
    console.print(table)


@handle_errors
def report(
    version: str | None = VersionArg,
    output: Path = typer.Option(
        None, "--output", "-o", help="HTML file to write (default: data-report-<id>.html)."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Write one self-contained HTML report of a version (opens offline, no CDN).

    Distributions, missingness, correlations, relation to the target, class
    balance and the validation results.

    Example: mlcycle data report 3f2a9c -o report.html
    """
    import sqlalchemy as sa

    from mlcycle.artifacts import ValidationReport
    from mlcycle.data.landing import status_of
    from mlcycle.data.report import render_report
    from mlcycle.store import tables as t

    project = load_project(spec)
    artifact_id = resolve_dataset(project, version)
    record = dataset_record(project, artifact_id)
    df = project.catalog.dataset_frame(artifact_id)
    validation = None
    status = status_of(project.store, artifact_id)
    report_id = status.get("validation_id") if status else None
    if report_id is None:
        with project.store.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.edges.c.child)
                .join(t.artifacts, t.artifacts.c.id == t.edges.c.child)
                .where(t.edges.c.parent == artifact_id, t.artifacts.c.kind == "validation")
            ).first()
        report_id = row[0] if row else None
    if report_id:
        validation = ValidationReport.model_validate(project.store.record(report_id))
    html = render_report(
        df,
        record,
        project.spec.problem,
        validation=validation,
        status=status["status"] if status else "unvalidated",
        title=f"{project.name} · dataset {artifact_id[:12]}",
    )
    target = output or Path(f"data-report-{artifact_id[:12]}.html")
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    if as_json:
        print_json({"dataset": artifact_id, "report": str(target), "bytes": len(html)})
    else:
        console.print(f"wrote {target} ({len(html) // 1024} KiB)")
