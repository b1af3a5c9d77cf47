"""`mlcycle runs`: list, show and compare tracked runs."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mlcycle.cli.common import JsonOption, SpecOption, console, handle_errors, print_json
from mlcycle.errors import BadInput

app = typer.Typer(
    help="Tracked runs: every baseline, candidate and trial the pipeline trains, and your own "
    "runs from mlcycle.start_run().\n\n"
    "Example: mlcycle runs list --filter 'metrics.valid_roc_auc > 0.7'",
    no_args_is_help=True,
)


# Metrics worth a column when none is asked for, the usual primary metrics first.
_PREFERRED = ("valid_roc_auc", "valid_rmse", "valid_accuracy", "valid_r2", "valid_log_loss")


def _engine(spec: Path) -> Any:
    from mlcycle.train.tracking import default_base_dir, get_tracker

    if spec.is_file():
        base = spec.resolve().parent
    elif spec.is_dir():
        base = spec.resolve()
    else:
        base = default_base_dir()
    return get_tracker(base).engine


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.4g}"


@app.command("list")
@handle_errors
def list_runs(
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    filter: str | None = typer.Option(
        None,
        "--filter",
        "-f",
        help="Clauses joined by 'and': metrics.K > 0.8, params.K = 'v', tags.K != 'v', status = "
        "'finished'.",
    ),
    order_by: str = typer.Option("start_time desc", "--order-by", help="metrics.K or attribute."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many runs."),
    metric: list[str] = typer.Option(
        [], "--metric", "-m", help="Metric columns to show (default: up to 3 valid_* metrics)."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first.

    Example: mlcycle runs list -e flights --filter "tags.role = 'candidate'" -m valid_roc_auc
    """
    from mlcycle.train.tracking.query import search_runs

    runs = search_runs(
        _engine(spec), experiment=experiment, filter=filter, order_by=order_by, limit=limit
    )
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        console.print("no runs yet — `mlcycle run` tracks its training, or use mlcycle.start_run()")
        return
    present = {k for r in runs for k in r.metrics}
    preferred = [k for k in _PREFERRED if k in present]
    shown = metric or (preferred or sorted(k for k in present if k.startswith("valid_")))[:2]
    experiments = {r.info["experiment"] for r in runs}
    table = Table(
        title=f"{len(runs)} run(s)"
        + (f" in {next(iter(experiments))}" if len(experiments) == 1 else "")
    )
    columns = ["id", *(["experiment"] if len(experiments) > 1 else []), "name", "status"]
    for col in (*columns, "started", "seconds", *shown):
        table.add_column(col.removeprefix("valid_"), no_wrap=col in ("id", "started"))
    for r in runs:
        started = _when(r.info["start_time"])[5:16]
        table.add_row(
            r.id[:8],
            *([r.info["experiment"]] if len(experiments) > 1 else []),
            r.info["name"],
            r.info["status"],
            started,
            f"{r.info['duration_s']:.2f}" if r.info["duration_s"] is not None else "",
            *(_num(r.metrics.get(m)) for m in shown),
        )
    console.print(table)


@app.command("show")
@handle_errors
def show(
    run_id: str = typer.Argument(..., help="A run id (or a unique prefix, or a run name)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one run: attributes, params, latest metrics, tags and files.

    Example: mlcycle runs show 5d0021e2
    """
    from mlcycle.train.tracking.query import get_run

    run = get_run(_engine(spec), run_id)
    if as_json:
        print_json(run.to_dict())
        return
    info = Table(title=f"run {run.id}", show_header=False)
    info.add_column("key", style="bold")
    info.add_column("value")
    for key, value in run.info.items():
        shown = _when(value) if key.endswith("_time") else value
        info.add_row(key, "" if shown is None else str(shown))
    console.print(info)
    for title, data in (("params", run.params), ("metrics", run.metrics), ("tags", run.tags)):
        if not data:
            continue
        table = Table(title=title)
        table.add_column("key")
        table.add_column("value")
        for key in sorted(data):
            value = data[key]
            table.add_row(key, _num(value) if isinstance(value, float) else str(value))
        console.print(table)
    for name, artifact_id in run.files.items():
        console.print(f"file {name} → artifact {artifact_id[:12]}")


@app.command("compare")
@handle_errors
def compare(
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids (prefixes or names)."),
    all_keys: bool = typer.Option(
        False, "--all", help="Also show params and metrics that are the same in every run."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Compare runs side by side: params, then metrics (differences only, unless --all).

    Example: mlcycle runs compare 5d0021e2 7a1c33f0
    """
    from mlcycle.train.tracking.query import get_run

    if len(run_ids) < 2:
        raise BadInput("compare needs at least two runs", "", "pass two or more run ids")
    engine = _engine(spec)
    runs = [get_run(engine, r) for r in run_ids]
    sections: dict[str, dict[str, list[Any]]] = {}
    for section in ("params", "metrics"):
        keys = sorted({k for r in runs for k in getattr(r, section)})
        rows = {k: [getattr(r, section).get(k) for r in runs] for k in keys}
        if not all_keys:
            rows = {k: v for k, v in rows.items() if len({repr(x) for x in v}) > 1}
        sections[section] = rows
    if as_json:
        print_json(
            {
                "runs": [{"id": r.id, "name": r.info["name"]} for r in runs],
                **sections,
            }
        )
        return
    table = Table(title="compare" + ("" if all_keys else " (differences; --all for every key)"))
    table.add_column("")
    for r in runs:
        table.add_column(f"{r.info['name']}\n{r.id[:8]}")
    for section, rows in sections.items():
        table.add_row(f"[bold]{section}[/]", *[""] * len(runs))
        for key, values in rows.items():
            table.add_row(
                f"  {key}",
                *(
                    _num(v) if isinstance(v, float) else ("" if v is None else str(v))
                    for v in values
                ),
            )
    console.print(table)
