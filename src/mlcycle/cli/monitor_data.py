"""How the `mlcycle monitor …` commands get their data: files, dataset versions, and the
project's :class:`~mlcycle.monitor.engine.Monitor` with its reference predictions cached.

Example:
    >>> project, mon = _monitor(Path("mlcycle.yaml"), None, reference_version="latest")
    >>> mon.reference.label
    'dataset:692ef2a81c0d'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.cli.common import err_console, load_project

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.schema import Schema


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
    from mlcycle.errors import BadInput

    try:
        load_project(spec)
    except BadInput:
        return read_table(ref), None  # no project here: read_table names the missing file
    return read_version(ref, spec)


def read_version(ref: str, spec: Path) -> tuple[pd.DataFrame, Schema]:
    """A dataset version of the project (id, prefix of ≥ 6 characters, or ``latest``)."""
    from mlcycle.errors import BadInput
    from mlcycle.monitor.datasets import load_version

    try:
        project = load_project(spec)
    except BadInput as exc:
        raise BadInput(
            f"cannot read dataset version {ref!r}: no project here",
            exc.what,
            "run inside a project (or pass --spec), or pass data files with --reference/--current",
        ) from None
    version = load_version(project.store, ref)
    return version.frame, version.schema


def _one_of(flag: str, value: str | None, version_flag: str, version: str | None) -> None:
    from mlcycle.errors import BadInput

    if value is not None and version is not None:
        raise BadInput(
            f"both {flag} and {version_flag} given",
            "each side of the comparison is one sample",
            f"pass {flag} (a file) or {version_flag} (a dataset version), not both",
        )


def _project_name(spec: Path) -> str:

    return str(load_project(spec).name)


def _monitor(
    spec: Path,
    model: str | None,
    *,
    window: str | None = None,
    quiet: bool = False,
    progress: Any = None,
    reference_version: str | None = None,
) -> Any:
    """The project's Monitor for MODEL (default: the champion), reference predictions cached.

    ``reference_version`` swaps the bundle's reference rows for a dataset version's
    (the model's predictions on them are computed once and cached too).
    ``progress`` receives the engine's progress; ``quiet`` without one drops it.
    """
    from mlcycle.cli.serve import resolve_bundle
    from mlcycle.monitor.engine import Monitor, Reference
    from mlcycle.predlog import predictions_root
    from mlcycle.monitor.reference import CalibrationFile

    project = load_project(spec)
    folder, version, _ = resolve_bundle(model or f"{project.name}@champion", spec)
    home = project.store.home / "monitor"
    reference = Reference.from_bundle(
        folder,
        version,
        _cached_predictions(
            home / f"{folder.name}.reference_predictions.parquet",
            lambda: _predict(folder, version, pd_read(folder / "reference.parquet")),
        ),
    )
    if reference_version is not None:
        from mlcycle.monitor.datasets import load_version

        data = load_version(project.store, reference_version)
        reference = reference.with_dataset(data)
        frame = reference.frame
        reference.predictions = _cached_predictions(
            home / f"{folder.name}.{data.id[:16]}.predictions.parquet",
            lambda: _predict(folder, version, frame),
        )
    settings = project.spec.monitor
    if window is not None:
        settings = settings.model_copy(update={"window": window})
    if progress is None and not quiet:
        from mlcycle.cli.monitor_progress import ProgressReporter

        progress = ProgressReporter(err_console)  # outside `with`: plain lines
    mon = Monitor(
        project.store,
        reference,
        settings,
        predictions_root(project.store.home),
        project.base_dir,
        primary=project.spec.problem.metric,
        progress=progress,
        calibration=CalibrationFile.for_reference(home, folder.name, reference),
    )
    mon.bundle_folder = folder  # type: ignore[attr-defined]
    return project, mon


def pd_read(path: Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path)


def _cached_predictions(cache: Path, make: Any) -> pd.DataFrame:
    """``make()`` once, then read from ``cache`` (the rows behind it never change)."""
    import pandas as pd

    if cache.is_file():
        return pd.read_parquet(cache)
    preds: pd.DataFrame = make()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    preds.to_parquet(tmp, index=False)
    tmp.replace(cache)
    return preds


def _predict(folder: Path, version: int | None, rows: pd.DataFrame) -> pd.DataFrame:
    """The model's predictions on ROWS: the baseline for prediction drift (and CBPE)."""
    import pandas as pd

    from mlcycle.serve import ModelRuntime

    runtime = ModelRuntime.load(folder, version, warmup=False)
    frame = runtime.check_rows(rows[runtime.features]).frame
    labels, proba = runtime.predict_arrays(frame)
    out = pd.DataFrame({"prediction": [str(v) for v in labels]})
    if runtime.meta.task == "regression":
        out["prediction"] = pd.Series(labels, dtype="float64")
    if proba is not None and runtime.positive_index is not None:
        out["probability"] = proba[:, runtime.positive_index]
    return out


def _streamed(
    reference_df: Any,
    current: str | None,
    columns: list[str] | None,
    schema: Schema | None,
    test: str,
    threshold: float | None,
    quiet: bool,
) -> Any:
    """``drift --stream``: the current Parquet file(s) as merged binned counts."""
    import glob

    from mlcycle.cli.monitor_progress import ProgressReporter
    from mlcycle.errors import BadInput
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
        if schema is not None:
            columns = [c.name for c in schema.features if c.kind != "datetime"]
        else:
            from mlcycle.schema import kind_of

            # As in memory: the shared columns, datetimes left out.
            shared = set(_parquet_columns(paths[0]))
            columns = [
                c
                for c in reference_df.columns
                if c in shared and kind_of(reference_df[c]) != "datetime"
            ]
    with ProgressReporter(err_console, enabled=not quiet) as progress:
        return stream_report(
            reference_df,
            paths,
            columns,
            test="js" if test == "auto" else test,
            threshold=threshold,
            progress=lambda text, done, total: progress(text, done, total, task="stream"),
        )


def _parquet_columns(path: str) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)
