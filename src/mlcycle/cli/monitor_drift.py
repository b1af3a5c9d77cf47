"""`mlcycle monitor drift`: one current sample against a reference, feature by feature.

Either side is a data file (no project needed), a dataset version of the
project, or — for the reference — the model bundle's reference sample.
``--stream`` reads the current Parquet files batch by batch in bounded memory.
"""

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
from mlcycle.cli.monitor_data import read_data, read_version
from mlcycle.errors import BadInput

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.artifacts import DriftReport
    from mlcycle.schema import Schema


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
    from mlcycle.monitor import drift_report

    _check_sides(current, current_version, reference, reference_version)
    asked = [c.strip() for c in columns_opt.split(",") if c.strip()] if columns_opt else None
    reference_df, schema, columns = _reference(reference, reference_version, model, spec, asked)
    if asked is not None:
        columns = asked
    seasonal = _seasonal(spec)
    if stream:
        report = _streamed(reference_df, current, columns, schema, test, threshold, as_json)
    else:
        current_df, _ = (
            read_version(current_version, spec)
            if current_version is not None
            else _read_file(str(current), spec, asked)
        )
        report = drift_report(
            reference_df,
            current_df,
            columns,
            schema=schema,
            test=test,
            threshold=threshold,
            seasonal=seasonal,
        )
    _emit(report, seasonal, output, as_json)


def _emit(report: DriftReport, seasonal: list[str], output: Path | None, as_json: bool) -> None:
    """Write the report where asked: a JSON file, JSON on stdout, or a table."""
    if output is not None:
        _write_json(output, report)
    if as_json:
        print_json(
            [
                {**f.model_dump(), **({"seasonal": True} if f.feature in seasonal else {})}
                for f in report.features
            ]
        )
        return
    _print_report(report, seasonal)


def _seasonal(spec: Path) -> list[str]:
    """The project's seasonal features (``data.features.seasonal``); none outside a project."""
    if not (spec / "mlcycle.yaml" if spec.is_dir() else spec).is_file():
        return []  # no project: known without importing the spec's models (as load_project)
    try:
        project = load_project(spec)
    except BadInput:
        return []
    return list(project.spec.data.features.seasonal)


def _write_json(output: Path, report: DriftReport) -> None:
    """The report as JSON, written atomically (temp file + rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_suffix(output.suffix + ".tmp")
    tmp.write_text(report.model_dump_json(indent=1))
    tmp.replace(output)


def _check_sides(
    current: str | None,
    current_version: str | None,
    reference: str | None,
    reference_version: str | None,
) -> None:
    """Each side is one sample (a file or a version, not both); the current side is needed."""
    for flag, value, version_flag, version in (
        ("--current", current, "--current-version", current_version),
        ("--reference", reference, "--reference-version", reference_version),
    ):
        if value is not None and version is not None:
            raise BadInput(
                f"both {flag} and {version_flag} given",
                "each side of the comparison is one sample",
                f"pass {flag} (a file) or {version_flag} (a dataset version), not both",
            )
    if current is None and current_version is None:
        raise BadInput(
            "no current data",
            "drift compares current data with a reference",
            "pass --current FILE or --current-version VERSION",
        )


def _reference(
    reference: str | None,
    reference_version: str | None,
    model: str | None,
    spec: Path,
    asked: list[str] | None = None,
) -> tuple[pd.DataFrame, Schema | None, list[str] | None]:
    """The reference rows, their contract when known, and the columns to test by default.

    Only the model bundle's reference names its columns (the model's features);
    a file or dataset version leaves them to :func:`drift_report`.
    """
    if reference_version is not None:
        frame, schema = read_version(reference_version, spec)
        return frame, schema, None
    if reference is not None:
        frame, found = _read_file(reference, spec, asked)
        return frame, found, None
    from mlcycle.bundle import Bundle
    from mlcycle.cli.serve import resolve_bundle

    folder, _, _ = resolve_bundle(model or f"{load_project(spec).name}@champion", spec)
    bundle = Bundle(folder)
    return bundle.reference(), bundle.schema(), list(bundle.meta().features)


def _read_file(
    ref: str, spec: Path, columns: list[str] | None
) -> tuple[pd.DataFrame, Schema | None]:
    """:func:`read_data`, with a shortcut for the usual ad-hoc side: one local Parquet file.

    That file is read as ``read_data`` reads it (``pd.read_parquet``, pyarrow),
    but only the ``columns`` asked for (those it has: a missing one is
    :func:`drift_report`'s to report), and without importing the data sources'
    machinery (fsspec, the spec's models) — about a tenth of a whole ad-hoc
    report. Anything else, or anything the shortcut cannot read, goes to
    ``read_data``, which reads it or says what is wrong in its own words.
    """
    path = Path(ref)
    if path.suffix.lower() in (".parquet", ".pq") and path.is_file():
        frame = _parquet_columns(path, columns)
        if frame is not None:
            return frame, None
    return read_data(ref, spec)


def _parquet_columns(path: Path, columns: list[str] | None) -> pd.DataFrame | None:
    """The file's ``columns`` (all if None), or None when it cannot be read that way."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        wanted = None
        if columns is not None:
            names = pq.read_schema(path).names
            if len(set(names)) == len(names):  # else read all: drift_report names the repeat
                wanted = [c for c in dict.fromkeys(columns) if c in names] or None
        frame = pd.read_parquet(path, engine="pyarrow", columns=wanted)
    except (pa.ArrowException, OSError, ValueError):
        return None
    return frame if len(frame) > 0 else None


def _print_report(report: DriftReport, seasonal: list[str]) -> None:
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
            ("yes" if f.drift else "no") + " (seasonal: expected)"
            if f.feature in seasonal
            else ("[red]yes[/]" if f.drift else "no"),
        )
    console.print(table)
    # Seasonal features drift with the calendar by design: listed, not counted.
    counted = [f for f in report.features if f.feature not in seasonal]
    drifted = [f.feature for f in counted if f.drift]
    marked = [f.feature for f in report.features if f.feature in seasonal]
    console.print(
        f"{len(drifted)} of {len(counted)} features drifted"
        + (f": {', '.join(drifted)}" if drifted else "")
        + (f" (seasonal, not counted: {', '.join(marked)})" if marked else "")
    )


def _streamed(
    reference_df: pd.DataFrame,
    current: str | None,
    columns: list[str] | None,
    schema: Schema | None,
    test: str,
    threshold: float | None,
    quiet: bool,
) -> DriftReport:
    """``drift --stream``: the current Parquet file(s) as merged binned counts."""
    import glob

    from mlcycle.cli.monitor_progress import ProgressReporter
    from mlcycle.monitor.streaming import stream_report

    if current is None:
        raise BadInput(
            "--stream reads --current Parquet files",
            "a dataset version is read whole",
            "pass --current FILE.parquet (or a glob), or drop --stream",
        )
    paths = sorted(glob.glob(current))
    if not paths or not all(p.endswith(".parquet") for p in paths):
        raise BadInput(
            f"--stream needs Parquet files for --current, got {current!r}",
            "a streamed window is read batch by batch from Parquet",
            "pass a .parquet file or a glob of them (or drop --stream)",
        )
    if columns is None:
        columns = _stream_columns(reference_df, schema, paths[0])
    with ProgressReporter(err_console, enabled=not quiet) as progress:
        report: DriftReport = stream_report(
            reference_df,
            paths,
            columns,
            test="js" if test == "auto" else test,
            threshold=threshold,
            progress=lambda text, done, total: progress(text, done, total, task="stream"),
        )
    return report


def _stream_columns(reference_df: Any, schema: Schema | None, first: str) -> list[str]:
    """As in memory: the schema's features, else the shared columns; datetimes left out."""
    if schema is not None:
        return [c.name for c in schema.features if c.kind != "datetime"]
    import pyarrow.parquet as pq

    from mlcycle.schema import kind_of

    shared = set(pq.ParquetFile(first).schema_arrow.names)
    return [
        c for c in reference_df.columns if c in shared and kind_of(reference_df[c]) != "datetime"
    ]
