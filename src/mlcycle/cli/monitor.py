"""`mlcycle monitor …`: drift, anomalies, performance and alerts against the training reference.

The group and its log-following commands (run, labels, alerts, report) live here;
the bigger commands have modules of their own and are registered on the group
below: `drift` (:mod:`.monitor_drift`), `replay` (:mod:`.monitor_replay`) and
`profile` (:mod:`.monitor_profile`).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    err_console,
    fmt,
    handle_errors,
    print_json,
)
from mlcycle.cli.monitor_data import Monitored, open_monitor, predict_rows, read_table
from mlcycle.cli.monitor_drift import drift
from mlcycle.cli.monitor_profile import profile
from mlcycle.cli.monitor_replay import replay

app = typer.Typer(
    help="Monitoring: drift, anomalies, performance and alerts against the training reference.",
    no_args_is_help=True,
)


app.command()(drift)


@app.command("run")
@handle_errors
def run_cmd(
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the champion)."),
    window: str | None = typer.Option(
        None, "--window", help="day, week, month or rows:N (default: monitor.window)."
    ),
    reference_version: str | None = typer.Option(
        None,
        "--reference-version",
        help="Compare with this dataset version (id, prefix or 'latest') instead of the "
        "bundle's reference rows.",
    ),
    current_version: str | None = typer.Option(
        None,
        "--current-version",
        help="Check this dataset version as one window instead of reading the log "
        "(a one-off: not added to the window series).",
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Read new prediction-log files, update their windows, performance and alerts.

    Example: mlcycle monitor run --window week
    Example (a dataset version against the training reference): mlcycle monitor run
    --current-version latest
    Example (the log against a dataset version): mlcycle monitor run --reference-version 692ef2
    """
    from mlcycle.cli.monitor_progress import ProgressReporter

    with ProgressReporter(err_console, enabled=not as_json) as progress:
        opened = open_monitor(
            spec, model, window=window, progress=progress, reference_version=reference_version
        )
        if current_version is not None:
            _check_version(opened, current_version, as_json)
            return
        summary = opened.monitor.run()
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{summary['new_files']} new file(s); {len(summary['windows_updated'])} window(s) "
        f"updated, {summary['windows']} in all; {summary['alerts_new']} new alert(s); "
        f"{summary['pending']} alert(s) still pending delivery"
    )


def _check_version(opened: Monitored, ref: str, as_json: bool) -> None:
    """``monitor run --current-version``: one dataset version measured like a window."""
    from mlcycle.monitor.datasets import load_version

    mon = opened.monitor
    data = load_version(mon.store, ref)
    frame = data.frame
    missing = [f for f in mon.features if f not in frame.columns]
    if not missing and len(frame):
        # Scored by the model, so prediction drift and the label-free estimate apply too.
        preds = predict_rows(opened.bundle, mon.reference.version, frame)
        frame = frame.reset_index(drop=True).assign(**{c: preds[c] for c in preds.columns})
    metrics = mon.check(frame, f"dataset version {data.id[:12]}")
    metrics["dataset"] = data.id
    if as_json:
        print_json(metrics)
        return
    if metrics.get("too_small"):
        console.print(f"{data.label}: {metrics['rows']} rows — too few to compare distributions")
        return
    report = metrics["drift_report"]
    drifted = [f["feature"] for f in report if f["drift"] and not f.get("seasonal")]
    seasonal = [f["feature"] for f in report if f["drift"] and f.get("seasonal")]
    table = Table(title=f"{data.label} ({metrics['rows']} rows) vs {mon.reference.label}")
    table.add_column("check")
    table.add_column("value")
    table.add_row("drifted features", ", ".join(drifted) or "none")
    if seasonal:
        table.add_row("seasonal drift (expected, not alerted)", ", ".join(seasonal))
    table.add_row("drift share", fmt(metrics["drift_share"]))
    for key in (
        "prediction_drift_stat",
        "domain_auc",
        "pca_error_ratio",
        "anomaly_rate",
        "out_of_range_share",
        "unseen_share",
    ):
        if key in metrics:
            table.add_row(key.replace("_", " "), fmt(metrics[key]))
    table.add_row("rule anomaly rate", fmt(metrics["rule_anomaly_rate"]))
    for key, value in metrics.items():
        if key.startswith("estimated:"):
            table.add_row(key, fmt(value))
    console.print(table)


@app.command()
@handle_errors
def labels(
    file: str = typer.Option(..., "--file", "-f", help="Parquet/CSV file with ids and labels."),
    id_column: str | None = typer.Option(
        None, "--id-column", help="Id column (default: the model's id column)."
    ),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Label column (default: the model's target)."
    ),
    replace: bool = typer.Option(False, "--replace", help="Overwrite conflicting labels."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the champion)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Ingest ground truth by id; unknown ids, duplicates and conflicts are reported, not joined.

    Example: mlcycle monitor labels --file labels/2013-07.parquet
    """
    from mlcycle import predlog
    from mlcycle.errors import BadInput
    from mlcycle.monitor.labels import ingest_labels

    mon = open_monitor(spec, model, quiet=True).monitor
    meta = mon.reference.meta
    id_col = id_column or meta.id_column
    if id_col is None:
        raise BadInput(
            "no id column to join labels on",
            "the model has no problem.id_column",
            "pass --id-column",
        )
    frame = read_table(file)
    files = predlog.list_files(mon.root, mon.model)
    ids = predlog.read_files(mon.root, files, columns=["row_id"])["row_id"].dropna()
    report = ingest_labels(
        mon.store,
        mon.model,
        frame,
        id_column=id_col,
        label_column=label_column or meta.target,
        known_ids=set(ids.astype(str)),
        replace=replace,
    )
    if as_json:
        print_json(report)
        return
    console.print(
        f"{report['stored']} label(s) stored of {report['rows']}; "
        f"{report['unknown_ids']} unknown id(s), {report['duplicates']} duplicate row(s), "
        f"{report['conflicts']} conflict(s), {report['unchanged']} already known, "
        f"{report['missing_label']} without id or label"
    )
    for key in ("unknown_examples", "duplicate_examples", "conflict_examples"):
        if report[key]:
            err_console.print(f"  {key.replace('_', ' ')}: {', '.join(map(str, report[key]))}")


@app.command()
@handle_errors
def alerts(
    retry: bool = typer.Option(False, "--retry", help="Send pending alerts again first."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the champion)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Every alert with its model version, window and delivery state.

    Example: mlcycle monitor alerts --retry --json
    """
    from mlcycle.monitor.alerts import deliver, list_alerts

    mon = open_monitor(spec, model, quiet=True).monitor
    if retry:
        deliver(mon.store, mon.model, mon.settings.sinks, mon.base_dir)
    rows = list_alerts(mon.store, mon.model)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"alerts of {mon.model}")
    for col in ("window", "version", "rule", "value", "bound", "severity", "pending"):
        table.add_column(col)
    for a in rows:
        table.add_row(
            a["window"],
            str(a["model_version"]),
            a["rule"],
            fmt(a["value"]),
            a["bound"],
            a["severity"],
            ", ".join(a["pending"]) or "delivered",
        )
    console.print(table)


@app.command()
@handle_errors
def report(
    output: Path = typer.Option(Path("monitor.html"), "--output", "-o", help="HTML file to write."),
    window: str | None = typer.Option(
        None, "--window-key", help="Window to detail (default: the latest with enough rows)."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the champion)."),
    spec: Path = SpecOption,
) -> None:
    """Write one self-contained HTML report: drift, distributions, performance, anomalies, alerts.

    Example: mlcycle monitor report -o monitor.html
    """
    from mlcycle.monitor.report import write_report

    mon = open_monitor(spec, model, quiet=True).monitor
    write_report(mon, output, window)
    console.print(f"wrote {output}")


app.command()(replay)
app.command()(profile)

__all__ = ["app"]
