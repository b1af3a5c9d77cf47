"""`mlcycle data …`: dataset versions and their contract."""

from __future__ import annotations

import json
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

app = typer.Typer(help="Data: dataset versions, their schema and profile.", no_args_is_help=True)


@app.command()
@handle_errors
def versions(spec: Path = SpecOption, as_json: bool = JsonOption) -> None:
    """List dataset versions, newest first.

    Example: mlcycle data versions
    """
    import sqlalchemy as sa

    from mlcycle.store import tables as t

    project = load_project(spec)
    with project.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.artifacts.c.id, t.artifacts.c.created_at, t.artifacts.c.record)
            .where(t.artifacts.c.kind == "dataset")
            .order_by(t.artifacts.c.created_at.desc())
        ).all()
    data = []
    for artifact_id, created, record in rows:
        rec = json.loads(record)
        data.append(
            {
                "id": artifact_id,
                "created_at": created,
                "rows": rec["rows"],
                "columns": len(rec["columns"]),
                "source": rec["source"],
            }
        )
    if as_json:
        print_json(data)
        return
    table = Table(title="dataset versions")
    for col in ("id", "created", "rows", "columns", "source"):
        table.add_column(col)
    for d in data:
        table.add_row(d["id"][:12], d["created_at"], str(d["rows"]), str(d["columns"]), d["source"])
    console.print(table)


@app.command()
@handle_errors
def show(
    version: str = typer.Argument(..., help="Dataset version id (or a prefix of ≥ 6 characters)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a dataset version: its contract and column profile.

    Example: mlcycle data show 3f2a9c
    """
    project = load_project(spec)
    artifact_id = project.store.resolve(version)
    record = project.store.record(artifact_id)
    if as_json:
        print_json({"id": artifact_id, **record})
        return
    console.print(
        f"[bold]dataset {artifact_id[:12]}[/] rows={record['rows']} source={record['source']}"
    )
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
