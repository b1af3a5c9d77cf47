"""`mlcycle monitor …`: drift of new data against the training reference."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from mlcycle.cli.common import JsonOption, SpecOption, console, fmt, handle_errors, print_json

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.schema import Schema

app = typer.Typer(
    help="Monitoring: data drift against the training reference.", no_args_is_help=True
)


def read_table(path: str) -> pd.DataFrame:
    from mlcycle.data import read_source
    from mlcycle.spec import Source

    return read_source(Source(path=path), Path.cwd())


@app.command()
@handle_errors
def drift(
    current: str = typer.Option(
        ..., "--current", "-c", help="Current data: Parquet/CSV file, folder or glob."
    ),
    reference: str | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="Reference data file; default: the reference sample in the model's bundle.",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Model whose reference to use (default: the champion)."
    ),
    test: str = typer.Option(
        "auto",
        "--test",
        help="auto (Evidently's rules), ks, chi2, z, psi, wasserstein, js or hellinger.",
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Override the test's threshold."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write the report as JSON here."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Per-feature drift of CURRENT against the reference: test, statistic, drift yes/no.

    Example: mlcycle monitor drift --current data/flights_future.parquet
    Example (no project): mlcycle monitor drift --reference ref.parquet --current cur.parquet --json
    """
    import pandas as pd

    from mlcycle.monitor import drift_report
    from mlcycle.schema import Schema

    schema: Schema | None = None
    columns = None
    if reference is not None:
        reference_df = read_table(reference)
    else:
        from mlcycle.cli.serve import resolve_bundle

        project_model = model or f"{_project_name(spec)}@champion"
        folder, _, _ = resolve_bundle(project_model, spec)
        reference_df = pd.read_parquet(folder / "reference.parquet")
        schema = Schema.model_validate_json((folder / "schema.json").read_text())
        import json

        columns = json.loads((folder / "meta.json").read_text())["features"]
    current_df = read_table(current)
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
