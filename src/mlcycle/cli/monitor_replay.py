"""`mlcycle monitor replay`: a half year of flights through the batch path, late labels
and the monitor, in one command.

Each month of the future data is scored by the batch path and written to the
prediction log; the labels of a month arrive ``--label-delay`` months later;
the monitor runs after every step. The command is registered on the
`mlcycle monitor` group by :mod:`mlcycle.cli.monitor`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    err_console,
    handle_errors,
    print_json,
)
from mlcycle.cli.monitor_data import Monitored, open_monitor, read_table

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.artifacts import BundleMeta
    from mlcycle.monitor.engine import Monitor


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
        opened = open_monitor(spec, model, window=window, progress=progress)
        steps = _replay(_future(opened, data), label_delay, as_json, progress)
    mon = opened.monitor
    if report_path is not None:
        from mlcycle.monitor.report import write_report

        write_report(mon, report_path)
    from mlcycle.monitor.alerts import list_alerts

    fired = list_alerts(mon.store, mon.model)
    if as_json:
        print_json({"steps": steps, "alerts": fired})
        return
    console.print(f"{len(fired)} alert(s):")
    for a in fired:
        console.print(f"  {a['window']}  {a['severity']:<8} {a['message']}", highlight=False)


@dataclass
class _Future:
    """The rows to replay, cut into months, and what scores and logs them."""

    mon: Monitor
    runtime: Any
    rows: pd.DataFrame
    months: pd.Series
    id_col: str
    ts_col: str

    @property
    def meta(self) -> BundleMeta:
        return self.mon.reference.meta


def _future(opened: Monitored, data: str | None) -> _Future:
    """Read the future rows (default: next to the spec's source) and cut them into months."""
    import pandas as pd

    from mlcycle.errors import BadInput
    from mlcycle.serve import ModelRuntime

    project, mon = opened.project, opened.monitor
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
    months = pd.to_datetime(future[ts_col], utc=True).dt.strftime("%Y-%m")
    runtime = ModelRuntime.load(opened.bundle.folder, mon.reference.version)
    return _Future(mon, runtime, future, months, id_col, ts_col)


def _replay(
    future: _Future, label_delay: int, as_json: bool, progress: Any
) -> list[dict[str, Any]]:
    """Score, log, label (late) and monitor month by month; one summary per step."""
    mon = future.mon
    months = sorted(future.months.unique())
    steps: list[dict[str, Any]] = []
    steps_all = [*months, *([None] * label_delay)]
    with tempfile.TemporaryDirectory(prefix="mlcycle-replay-") as tmp:
        for i, month in enumerate(steps_all):
            progress(f"{month or 'late labels'}", i, len(steps_all), task="replay")
            scored = None if month is None else _score_month(future, month, Path(tmp))
            labelled = months[i - label_delay] if i - label_delay >= 0 else None
            stored = None if labelled is None else _label_month(future, labelled)
            result = mon.run()
            steps.append(
                {
                    "month": month,
                    "scored": scored,
                    "labels_for": labelled,
                    "labels_stored": stored,
                    "alerts_new": result["alerts_new"],
                }
            )
            if not as_json:
                err_console.print(
                    f"[bold]{month or 'labels'}[/]: "
                    + (f"scored {scored} rows; " if month else "")
                    + (f"labels for {labelled}: {stored}; " if stored is not None else "")
                    + f"{result['alerts_new']} new alert(s)"
                )
    progress("done", len(steps_all), len(steps_all), task="replay")
    return steps


def _score_month(future: _Future, month: str, tmp: Path) -> int:
    """Score one month through the batch path and write it to the log; the rows scored."""
    import pandas as pd

    from mlcycle import predlog
    from mlcycle.serve import predict_file

    meta, id_col = future.meta, future.id_col
    part = future.rows[future.months == month].reset_index(drop=True)
    inp, out = tmp / f"{month}.parquet", tmp / f"{month}.scored.parquet"
    part.to_parquet(inp, index=False)
    summary = predict_file(future.runtime, str(inp), str(out), id_column=id_col)
    scored = pd.read_parquet(out).drop(columns=["model_version"])
    log = part[[id_col, future.ts_col, *meta.features]].merge(scored, on=id_col)
    log = log.rename(columns={future.ts_col: "ts"})
    log["row_id"] = log[id_col].astype(str)
    if id_col not in meta.features:
        log = log.drop(columns=[id_col])
    log["request_id"] = [f"replay-{month}-{k}" for k in range(len(log))]
    log["model"] = meta.name
    log["model_version"] = future.mon.reference.version or 0
    log["role"] = "batch"
    if future.runtime.is_classifier:
        log["prediction"] = log["prediction"].astype(str)
    predlog.write_predictions(future.mon.root, meta.name, log)
    return int(summary["predicted"])


def _label_month(future: _Future, month: str) -> int:
    """Ingest the labels of one month (the ids the log has seen); the labels stored."""
    from mlcycle import predlog
    from mlcycle.monitor.labels import ingest_labels

    meta, mon = future.meta, future.mon
    truth = future.rows.loc[future.months == month, [future.id_col, meta.target]]
    files = predlog.list_files(mon.root, meta.name)
    ids = predlog.read_files(mon.root, files, columns=["row_id"])["row_id"].dropna()
    ingested = ingest_labels(
        mon.store,
        meta.name,
        truth,
        id_column=future.id_col,
        label_column=meta.target,
        known_ids=set(ids.astype(str)),
    )
    return int(ingested["stored"])
