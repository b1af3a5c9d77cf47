"""The `mlcycle` command: one Typer app, one module per command group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mlcycle.cli import data as data_cli
from mlcycle.cli import export as export_cli
from mlcycle.cli import init as init_cli
from mlcycle.cli import lineage as lineage_cli
from mlcycle.cli import loop as loop_cli
from mlcycle.cli import loop_backtest as loop_backtest_cli
from mlcycle.cli import models as models_cli
from mlcycle.cli import monitor as monitor_cli
from mlcycle.cli import runs as runs_cli
from mlcycle.cli import serve as serve_cli
from mlcycle.cli import ui as ui_cli
from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    err_console,
    fmt,
    handle_errors,
    load_project,
    print_json,
)
from mlcycle.errors import BadInput, StepFailed

app = typer.Typer(
    name="mlcycle",
    help="One tool for the whole life of a tabular ML model.\n\n"
    "Example: mlcycle init demo --example flights && cd demo && mlcycle run",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(loop_cli.app, name="loop")
loop_cli.app.command("backtest")(loop_backtest_cli.backtest)
app.add_typer(models_cli.app, name="models")
app.add_typer(monitor_cli.app, name="monitor")
app.add_typer(runs_cli.app, name="runs")
app.command("init")(init_cli.init)
app.command("serve")(serve_cli.serve)
app.command("predict")(serve_cli.predict)
app.command("lineage")(lineage_cli.lineage)
app.command("ui")(ui_cli.ui)
models_cli.app.command("export")(export_cli.export)


# Summary keys that are for caching and lineage, not for a person watching a run.
_QUIET_SUMMARY_KEYS = frozenset(
    {
        "schema_hash",
        "model",
        "first_warnings",
        "failed",
        "partitions_hash",
        "quarantined",
        "quarantine",
        "warnings",
        "out_of_range",
    }
)


@app.command()
@handle_errors
def run(
    spec: Path = SpecOption,
    until: str | None = typer.Option(None, "--until", help="Stop after this step."),
    force: bool = typer.Option(False, "--force", help="Ignore the cache and run every step."),
    as_json: bool = JsonOption,
) -> None:
    """Run the lifecycle: ingest → validate → split → train → evaluate → gate → register → promote.

    Steps whose inputs did not change are reused from the cache.

    Example: mlcycle run --until evaluate
    """
    project = load_project(spec)
    status = None if as_json else console.status("starting…")
    if status:
        status.start()

    def listener(step: str, report: Any) -> None:
        if as_json or status is None:
            return
        if report is None:
            status.update(f"[bold]{step}[/]…")
            return
        mark = {
            "ran": "[green]✔[/]",
            "cached": "[cyan]↺[/]",
            "skipped": "[yellow]–[/]",
            "failed": "[red]✘[/]",
        }[report.status]
        detail = ", ".join(
            f"{k}={fmt(v)}" for k, v in report.summary.items() if k not in _QUIET_SUMMARY_KEYS
        )
        console.print(
            f"{mark} {step:<9} {report.status:<7} {report.seconds:6.2f}s  {detail}", highlight=False
        )
        for line in report.summary.get("failed", []) or []:
            console.print(f"    [yellow]gate:[/] {line}", highlight=False)
        for line in report.summary.get("quarantine", []) or []:
            console.print(f"    [yellow]quarantined:[/] {line}", highlight=False)
        for line in report.summary.get("warnings", []) or []:
            console.print(f"    [yellow]warning:[/] {line}", highlight=False)

    try:
        report = project.run(until=until, force=force, listener=listener)
    except StepFailed as exc:
        if status:
            status.stop()
        if as_json and hasattr(exc, "run"):
            print_json(exc.run.to_dict() | {"error": exc.to_dict()})
        raise
    if status:
        status.stop()
    if as_json:
        print_json(report.to_dict())
        return
    cached = sum(1 for s in report.steps if s.status == "cached")
    console.print(
        f"run {report.run_id[:8]} {report.status} in {report.seconds:.2f}s "
        f"({cached}/{len(report.steps)} steps from cache)"
    )


@app.command()
@handle_errors
def steps(spec: Path = SpecOption, as_json: bool = JsonOption) -> None:
    """Show the last run of each step.

    Example: mlcycle steps
    """
    import sqlalchemy as sa

    from mlcycle.store import tables as t

    project = load_project(spec)
    with project.store.engine.connect() as conn:
        last = (
            conn.execute(
                sa.select(t.pipeline_runs).order_by(t.pipeline_runs.c.started_at.desc()).limit(1)
            )
            .mappings()
            .first()
        )
        if last is None:
            raise BadInput("no pipeline run yet", "", "run `mlcycle run`")
        rows = (
            conn.execute(
                sa.select(t.step_runs)
                .where(t.step_runs.c.pipeline_run_id == last["id"])
                .order_by(t.step_runs.c.id)
            )
            .mappings()
            .all()
        )
    if as_json:
        print_json({"run": dict(last), "steps": [dict(r) for r in rows]})
        return
    table = Table(title=f"run {last['id'][:8]} — {last['status']}")
    for col in ("step", "status", "seconds", "error"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["step"],
            r["status"],
            f"{r['duration_s'] or 0:.2f}",
            (r["error"] or "").splitlines()[0] if r["error"] else "",
        )
    console.print(table)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("mlcycle: interrupted")
        raise SystemExit(130) from None
