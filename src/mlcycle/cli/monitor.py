"""`mlcycle monitor …`: drift, anomalies, performance and alerts against the training reference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from mlcycle.cli.monitor_data import (
    _monitor,
    _one_of,
    _predict,
    _project_name,
    _streamed,
    read_data,
    read_table,
    read_version,
)

if TYPE_CHECKING:
    from mlcycle.schema import Schema

app = typer.Typer(
    help="Monitoring: drift, anomalies, performance and alerts against the training reference.",
    no_args_is_help=True,
)


@app.command()
@handle_errors
def drift(
    current: str | None = typer.Option(
        None,
        "--current",
        "-c",
        help="Current data: Parquet/CSV file, folder or glob, or a dataset version id.",
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="Reference data file or dataset version id; default: the model bundle's "
        "reference sample.",
    ),
    current_version: str | None = typer.Option(
        None,
        "--current-version",
        help="Current data: a dataset version of the project (id, prefix or 'latest').",
    ),
    reference_version: str | None = typer.Option(
        None,
        "--reference-version",
        help="Reference: a dataset version of the project (id, prefix or 'latest').",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model whose reference to use (default: the champion)."
    ),
    test: str = typer.Option(
        "auto",
        "--test",
        help="auto (mlcycle's calibrated decision), evidently (Evidently's rules), ks, chi2, "
        "z, psi, wasserstein, js or hellinger.",
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Override the test's threshold."
    ),
    columns_opt: str | None = typer.Option(
        None, "--columns", help="Comma-separated columns to test (default: the features)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write the report as JSON here."
    ),
    stream: bool = typer.Option(
        False,
        "--stream",
        help="Read --current Parquet file(s) batch by batch in bounded memory, with progress "
        "(binned tests only: js — the default here —, psi, hellinger, chi2).",
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Per-feature drift of CURRENT against the reference: test, statistic, drift yes/no.

    Example: mlcycle monitor drift --current data/flights_future.parquet
    Example (dataset versions): mlcycle monitor drift --reference-version 692ef2
    --current-version latest
    Example (no project): mlcycle monitor drift --reference ref.parquet --current cur.parquet --json
    Example (a window too big for memory): mlcycle monitor drift -r ref.parquet
    -c 'big/*.parquet' --stream
    """
    import pandas as pd

    from mlcycle.errors import BadInput
    from mlcycle.monitor import drift_report
    from mlcycle.schema import Schema

    _one_of("--current", current, "--current-version", current_version)
    _one_of("--reference", reference, "--reference-version", reference_version)
    if current is None and current_version is None:
        raise BadInput(
            "no current data",
            "drift compares current data with a reference",
            "pass --current FILE or --current-version VERSION",
        )
    schema: Schema | None = None
    columns = None
    if reference_version is not None:
        reference_df, schema = read_version(reference_version, spec)
    elif reference is not None:
        reference_df, schema = read_data(reference, spec)
    else:
        from mlcycle.cli.serve import resolve_bundle

        project_model = model or f"{_project_name(spec)}@champion"
        folder, _, _ = resolve_bundle(project_model, spec)
        reference_df = pd.read_parquet(folder / "reference.parquet")
        schema = Schema.model_validate_json((folder / "schema.json").read_text())
        import json

        columns = json.loads((folder / "meta.json").read_text())["features"]
    if columns_opt:
        columns = [c.strip() for c in columns_opt.split(",") if c.strip()]
    if stream:
        report = _streamed(reference_df, current, columns, schema, test, threshold, as_json)
    else:
        if current_version is not None:
            current_df, _ = read_version(current_version, spec)
        else:
            assert current is not None
            current_df, _ = read_data(current, spec)
        report = drift_report(
            reference_df, current_df, columns, schema=schema, test=test, threshold=threshold
        )
    rows = [f.model_dump() for f in report.features]
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_suffix(output.suffix + ".tmp")
        tmp.write_text(report.model_dump_json(indent=1))
        tmp.replace(output)
    if as_json:
        print_json(rows)
        return
    table = Table(
        title=f"drift: {report.current_rows} current rows vs {report.reference_rows} reference rows"
    )
    for col in ("feature", "kind", "test", "statistic", "p-value", "threshold", "drift"):
        table.add_column(col)
    for f in report.features:
        table.add_row(
            f.feature,
            f.kind,
            f.test,
            fmt(f.statistic),
            "" if f.p_value is None else f"{f.p_value:.3g}",
            fmt(f.threshold),
            "[red]yes[/]" if f.drift else "no",
        )
    console.print(table)
    console.print(
        f"{len(report.drifted)} of {len(report.features)} features drifted"
        + (f": {', '.join(report.drifted)}" if report.drifted else "")
    )


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
        _, mon = _monitor(
            spec, model, window=window, progress=progress, reference_version=reference_version
        )
        if current_version is not None:
            _check_version(mon, current_version, spec, as_json)
            return
        summary = mon.run()
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{summary['new_files']} new file(s); {len(summary['windows_updated'])} window(s) "
        f"updated, {summary['windows']} in all; {summary['alerts_new']} new alert(s); "
        f"{summary['pending']} alert(s) still pending delivery"
    )


def _check_version(mon: Any, ref: str, spec: Path, as_json: bool) -> None:
    """``monitor run --current-version``: one dataset version measured like a window."""
    from mlcycle.monitor.datasets import load_version

    data = load_version(mon.store, ref)
    frame = data.frame
    missing = [f for f in mon.features if f not in frame.columns]
    if not missing and len(frame):
        # Scored by the model, so prediction drift and the label-free estimate apply too.
        preds = _predict(mon.bundle_folder, mon.reference.version, frame)
        frame = frame.reset_index(drop=True).assign(**{c: preds[c] for c in preds.columns})
    metrics = mon.check(frame, f"dataset version {data.id[:12]}")
    metrics["dataset"] = data.id
    if as_json:
        print_json(metrics)
        return
    if metrics.get("too_small"):
        console.print(f"{data.label}: {metrics['rows']} rows — too few to compare distributions")
        return
    drifted = [f["feature"] for f in metrics["drift_report"] if f["drift"]]
    table = Table(title=f"{data.label} ({metrics['rows']} rows) vs {mon.reference.label}")
    table.add_column("check")
    table.add_column("value")
    table.add_row("drifted features", ", ".join(drifted) or "none")
    table.add_row("drift share", fmt(metrics["drift_share"]))
    for key in ("prediction_drift_stat", "domain_auc", "pca_error_ratio", "anomaly_rate"):
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
    from mlcycle.errors import BadInput
    from mlcycle import predlog
    from mlcycle.monitor.labels import ingest_labels

    _, mon = _monitor(spec, model, quiet=True)
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

    _, mon = _monitor(spec, model, quiet=True)
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

    _, mon = _monitor(spec, model, quiet=True)
    write_report(mon, output, window)
    console.print(f"wrote {output}")


# The replay command lives in its own module; importing it registers it on `app`.
from mlcycle.cli import monitor_replay as _replay  # noqa: E402

__all__ = ["_replay", "app"]
