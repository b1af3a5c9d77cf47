"""`mlcycle run` and `mlcycle steps`: the lifecycle pipeline and its last run.

Registered on the root command by name (see ``COMMANDS`` in :mod:`mlcycle.cli.main`),
so this module is imported only when one of the two is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    fmt,
    handle_errors,
    load_project,
    print_json,
)
from mlcycle.errors import BadInput, StepFailed

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
        for label, line in notes(report.summary):
            console.print(f"    [yellow]{label}:[/] {line}", highlight=False)

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


@handle_errors
def steps(spec: Path = SpecOption, as_json: bool = JsonOption) -> None:
    """Show the last run of each step.

    Example: mlcycle steps
    """
    import sqlalchemy as sa
    from rich.table import Table

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


def notes(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines a step's summary asks to show under it: gate failures, quarantine, warnings.

    Steps say ``warnings`` two ways: the split step as a list of messages, the
    validate step as a count with the first few in ``first_warnings``.

    Example:
        >>> notes({"warnings": 7, "first_warnings": ["dep_delay: 3 above max"]})
        [('warning', 'dep_delay: 3 above max'), ('warning', '… 6 more (mlcycle data report)')]
    """
    lines = [("gate", str(line)) for line in summary.get("failed") or []]
    lines += [("quarantined", str(line)) for line in summary.get("quarantine") or []]
    warnings = summary.get("warnings")
    if isinstance(warnings, list):
        lines += [("warning", str(line)) for line in warnings]
    elif isinstance(warnings, int) and warnings:
        first = [str(line) for line in summary.get("first_warnings") or []]
        lines += [("warning", line) for line in first]
        if warnings > len(first):
            lines.append(("warning", f"… {warnings - len(first)} more (mlcycle data report)"))
    return lines
