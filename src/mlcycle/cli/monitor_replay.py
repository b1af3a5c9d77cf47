"""`mlcycle monitor replay`: a half year of flights through the batch path, late labels
and the monitor, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    err_console,
    handle_errors,
    print_json,
)
from mlcycle.cli.monitor import app
from mlcycle.cli.monitor_data import _monitor, read_table


@app.command()
@handle_errors
def replay(
    data: str | None = typer.Option(
        None, "--data", help="Future data to replay (default: the example's *_future.parquet)."
    ),
    label_delay: int = typer.Option(
        1, "--label-delay", min=0, help="Windows after which a window's labels arrive."
    ),
    window: str = typer.Option("month", "--window", help="Window size: day, week, month, rows:N."),
    report_path: Path | None = typer.Option(
        None, "--report", help="Also write the HTML report here."
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Model (default: the champion)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Score future data month by month through the batch path, log, label late, monitor.

    Example: mlcycle monitor replay --label-delay 1 --report monitor.html
    """
    from mlcycle.cli.monitor_progress import ProgressReporter

    with ProgressReporter(err_console, enabled=not as_json) as progress:
        project, mon = _monitor(spec, model, window=window, progress=progress)
        _replay(project, mon, data, label_delay, report_path, as_json, progress)


def _replay(
    project: Any,
    mon: Any,
    data: str | None,
    label_delay: int,
    report_path: Path | None,
    as_json: bool,
    progress: Any,
) -> None:
    import tempfile

    import pandas as pd

    from mlcycle.errors import BadInput
    from mlcycle import predlog
    from mlcycle.monitor.labels import ingest_labels
    from mlcycle.serve import ModelRuntime, predict_file

    meta = mon.reference.meta
    source = project.base_dir / project.spec.data.source.path
    path = data or str(source.with_name(source.stem + "_future" + source.suffix))
    future = read_table(path)
    ts_col = meta.timestamp_column
    if ts_col is None or ts_col not in future.columns:
        raise BadInput(
            f"the replay data {path} has no timestamp column '{ts_col}'",
            "the replay cuts the data into months by time",
            "set problem.timestamp_column to a datetime column of the data",
        )
    id_col = meta.id_column or "_row"
    if id_col not in future.columns:
        future[id_col] = range(len(future))
    ts = pd.to_datetime(future[ts_col], utc=True)
    periods = ts.dt.strftime("%Y-%m")
    months = sorted(periods.unique())
    runtime = ModelRuntime.load(mon.bundle_folder, mon.reference.version)
    version = mon.reference.version or 0
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mlcycle-replay-") as tmp:
        steps_all = [*months, *([None] * label_delay)]
        for i, month in enumerate(steps_all):
            progress(f"{month or 'late labels'}", i, len(steps_all), task="replay")
            if month is not None:
                part = future[periods == month].reset_index(drop=True)
                inp, out = Path(tmp) / f"{month}.parquet", Path(tmp) / f"{month}.scored.parquet"
                part.to_parquet(inp, index=False)
                summary = predict_file(runtime, str(inp), str(out), id_column=id_col)
                scored = pd.read_parquet(out).drop(columns=["model_version"])
                log = part[[id_col, ts_col, *meta.features]].merge(scored, on=id_col)
                log = log.rename(columns={ts_col: "ts"})
                log["row_id"] = log[id_col].astype(str)
                if id_col not in meta.features:
                    log = log.drop(columns=[id_col])
                log["request_id"] = [f"replay-{month}-{k}" for k in range(len(log))]
                log["model"] = meta.name
                log["model_version"] = version
                log["role"] = "batch"
                log["prediction"] = (
                    log["prediction"].astype(str) if runtime.is_classifier else log["prediction"]
                )
                predlog.write_predictions(mon.root, meta.name, log)
            labelled = months[i - label_delay] if i - label_delay >= 0 else None
            ingested = None
            if labelled is not None:
                truth = future.loc[periods == labelled, [id_col, meta.target]]
                files = predlog.list_files(mon.root, meta.name)
                ids = predlog.read_files(mon.root, files, columns=["row_id"])["row_id"].dropna()
                ingested = ingest_labels(
                    mon.store,
                    meta.name,
                    truth,
                    id_column=id_col,
                    label_column=meta.target,
                    known_ids=set(ids.astype(str)),
                )
            result = mon.run()
            steps.append(
                {
                    "month": month,
                    "scored": None if month is None else summary["predicted"],
                    "labels_for": labelled,
                    "labels_stored": None if ingested is None else ingested["stored"],
                    "alerts_new": result["alerts_new"],
                }
            )
            if not as_json:
                err_console.print(
                    f"[bold]{month or 'labels'}[/]: "
                    + (f"scored {summary['predicted']} rows; " if month else "")
                    + (f"labels for {labelled}: {ingested['stored']}; " if ingested else "")
                    + f"{result['alerts_new']} new alert(s)"
                )
    progress("done", len(steps_all), len(steps_all), task="replay")
    if report_path is not None:
        from mlcycle.monitor.report import write_report

        write_report(mon, report_path)
    from mlcycle.monitor.alerts import list_alerts

    fired = list_alerts(mon.store, meta.name)
    if as_json:
        print_json({"steps": steps, "alerts": fired})
        return
    console.print(f"{len(fired)} alert(s):")
    for a in fired:
        console.print(f"  {a['window']}  {a['severity']:<8} {a['message']}", highlight=False)
