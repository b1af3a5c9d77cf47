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
    load_project,
    print_json,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.schema import Schema

app = typer.Typer(
    help="Monitoring: drift, anomalies, performance and alerts against the training reference.",
    no_args_is_help=True,
)


def read_table(path: str) -> pd.DataFrame:
    from mlcycle.data import read_source
    from mlcycle.spec import Source

    return read_source(Source(path=path), Path.cwd())


def read_data(ref: str, spec: Path) -> tuple[pd.DataFrame, Schema | None]:
    """A file, folder or glob; else a dataset version id (prefix) of the project.

    A dataset version brings its frozen contract along, so kinds come from it.
    """
    import glob

    if Path(ref).exists() or glob.has_magic(ref) or "://" in ref or len(ref) < 6:
        return read_table(ref), None
    import pandas as pd

    from mlcycle.artifacts import DatasetVersion
    from mlcycle.errors import BadInput, NotFound

    try:
        project = load_project(spec)
    except BadInput:
        return read_table(ref), None  # no project here: read_table names the missing file
    try:
        artifact = project.store.resolve(ref)
    except NotFound:
        raise NotFound(
            f"{ref} is neither a data file nor a dataset version",
            "no such file, and no dataset version id starts with it",
            "pass a Parquet/CSV path, or an id from `mlcycle data versions`",
        ) from None
    if project.store.kind(artifact) != "dataset":
        raise BadInput(
            f"{ref} is a {project.store.kind(artifact)}, not a dataset version",
            "drift compares data",
            "pass a data file or an id from `mlcycle data versions`",
        )
    record = DatasetVersion.model_validate(project.store.record(artifact))
    return pd.read_parquet(project.store.path(artifact) / "data.parquet"), record.schema_


@app.command()
@handle_errors
def drift(
    current: str = typer.Option(
        ...,
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
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Per-feature drift of CURRENT against the reference: test, statistic, drift yes/no.

    Example: mlcycle monitor drift --current data/flights_future.parquet
    Example (dataset versions): mlcycle monitor drift --reference 692ef2 --current a81c0d
    Example (no project): mlcycle monitor drift --reference ref.parquet --current cur.parquet --json
    """
    import pandas as pd

    from mlcycle.monitor import drift_report
    from mlcycle.schema import Schema

    schema: Schema | None = None
    columns = None
    if reference is not None:
        reference_df, schema = read_data(reference, spec)
    else:
        from mlcycle.cli.serve import resolve_bundle

        project_model = model or f"{_project_name(spec)}@champion"
        folder, _, _ = resolve_bundle(project_model, spec)
        reference_df = pd.read_parquet(folder / "reference.parquet")
        schema = Schema.model_validate_json((folder / "schema.json").read_text())
        import json

        columns = json.loads((folder / "meta.json").read_text())["features"]
    current_df, _ = read_data(current, spec)
    if columns_opt:
        columns = [c.strip() for c in columns_opt.split(",") if c.strip()]
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


def _project_name(spec: Path) -> str:
    from mlcycle.cli.common import load_project

    return str(load_project(spec).name)


# --- monitoring a deployed model ----------------------------------------------------


def _monitor(
    spec: Path, model: str | None, *, window: str | None = None, quiet: bool = False
) -> Any:
    """The project's Monitor for MODEL (default: the champion), reference predictions cached."""
    import pandas as pd

    from mlcycle.cli.serve import resolve_bundle
    from mlcycle.monitor.engine import Monitor, Reference
    from mlcycle.monitor.predlog import predictions_root

    project = load_project(spec)
    folder, version, _ = resolve_bundle(model or f"{project.name}@champion", spec)
    cache = project.store.home / "monitor" / f"{folder.name}.reference_predictions.parquet"
    if cache.is_file():
        preds = pd.read_parquet(cache)
    else:
        preds = _reference_predictions(folder, version)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        preds.to_parquet(tmp, index=False)
        tmp.replace(cache)
    settings = project.spec.monitor
    if window is not None:
        settings = settings.model_copy(update={"window": window})
    reference = Reference.from_bundle(folder, version, preds)
    progress = None if quiet else (lambda text: err_console.print(f"[dim]monitor:[/] {text}"))
    mon = Monitor(
        project.store,
        reference,
        settings,
        predictions_root(project.store.home),
        project.base_dir,
        primary=project.spec.problem.metric,
        progress=progress,
    )
    mon.bundle_folder = folder  # type: ignore[attr-defined]
    return project, mon


def _reference_predictions(folder: Path, version: int | None) -> pd.DataFrame:
    """The model's predictions on its own reference rows: the baseline for prediction drift."""
    import pandas as pd

    from mlcycle.serve import ModelRuntime

    runtime = ModelRuntime.load(folder, version, warmup=False)
    reference = pd.read_parquet(folder / "reference.parquet")
    frame = runtime.check_rows(reference[runtime.features]).frame
    labels, proba = runtime.predict_arrays(frame)
    out = pd.DataFrame({"prediction": [str(v) for v in labels]})
    if runtime.meta.task == "regression":
        out["prediction"] = pd.Series(labels, dtype="float64")
    if proba is not None and runtime.positive_index is not None:
        out["probability"] = proba[:, runtime.positive_index]
    return out


@app.command("run")
@handle_errors
def run_cmd(
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the champion)."),
    window: str | None = typer.Option(
        None, "--window", help="day, week, month or rows:N (default: monitor.window)."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Read new prediction-log files, update their windows, performance and alerts.

    Example: mlcycle monitor run --window week
    """
    _, mon = _monitor(spec, model, window=window, quiet=as_json)
    summary = mon.run()
    if as_json:
        print_json(summary)
        return
    console.print(
        f"{summary['new_files']} new file(s); {len(summary['windows_updated'])} window(s) "
        f"updated, {summary['windows']} in all; {summary['alerts_new']} new alert(s); "
        f"{summary['pending']} alert(s) still pending delivery"
    )


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
    from mlcycle.monitor import predlog
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
