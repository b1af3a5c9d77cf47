"""How the `mlcycle monitor …` commands get their data: files, dataset versions, and the
project's :class:`~mlcycle.monitor.engine.Monitor` with its reference predictions cached.

Example:
    >>> opened = open_monitor(Path("mlcycle.yaml"), None, reference_version="latest")
    >>> opened.monitor.reference.label
    'dataset:692ef2a81c0d'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.cli.common import err_console, load_project

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.bundle import Bundle
    from mlcycle.monitor.engine import Monitor
    from mlcycle.schema import Schema


def read_table(path: str) -> pd.DataFrame:
    """A Parquet/CSV file, folder or glob read as one frame (relative to the working folder).

    Example:
        >>> read_table("labels/2013-07.parquet").columns.tolist()
        ['flight_id', 'delayed']
    """
    from mlcycle.data import read_source
    from mlcycle.spec import Source

    return read_source(Source(path=path), Path.cwd())


def read_data(ref: str, spec: Path) -> tuple[pd.DataFrame, Schema | None]:
    """A file, folder or glob; else a dataset version id (prefix) of the project.

    A dataset version brings its frozen contract along, so kinds come from it.

    Example:
        >>> frame, schema = read_data("data/flights_future.parquet", Path("mlcycle.yaml"))
        >>> schema is None
        True
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
    """A dataset version of the project (id, prefix of ≥ 6 characters, or ``latest``).

    Example:
        >>> frame, schema = read_version("latest", Path("mlcycle.yaml"))
    """
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


@dataclass
class Monitored:
    """A model under monitoring: the project, its :class:`Monitor` and the bundle it reads."""

    project: Any
    monitor: Monitor
    bundle: Bundle
    #: The registered version (``None`` for a bundle folder given by path).
    version: int | None


def open_monitor(
    spec: Path,
    model: str | None,
    *,
    window: str | None = None,
    quiet: bool = False,
    progress: Any = None,
    reference_version: str | None = None,
) -> Monitored:
    """The project's Monitor for MODEL (default: the champion), reference predictions cached.

    ``reference_version`` swaps the bundle's reference rows for a dataset version's
    (the model's predictions on them are computed once and cached too).
    ``progress`` receives the engine's progress; ``quiet`` without one drops it.

    Example:
        >>> opened = open_monitor(Path("mlcycle.yaml"), None, reference_version="latest")
        >>> opened.monitor.reference.label
        'dataset:692ef2a81c0d'
    """
    from mlcycle.cli.serve import resolve_bundle
    from mlcycle.monitor.engine import Monitor, Reference
    from mlcycle.monitor.reference import CalibrationFile
    from mlcycle.predlog import predictions_root

    project = load_project(spec)
    folder, version, _ = resolve_bundle(model or f"{project.name}@champion", spec)
    from mlcycle.bundle import Bundle

    bundle = Bundle(folder)
    home = project.store.home / "monitor"
    reference = Reference.from_bundle(
        folder,
        version,
        _cached_predictions(
            home / f"{folder.name}.reference_predictions.parquet",
            lambda: predict_rows(bundle, version, bundle.reference()),
        ),
    )
    if reference_version is not None:
        from mlcycle.monitor.datasets import load_version

        data = load_version(project.store, reference_version)
        reference = reference.with_dataset(data)
        frame = reference.frame
        reference.predictions = _cached_predictions(
            home / f"{folder.name}.{data.id[:16]}.predictions.parquet",
            lambda: predict_rows(bundle, version, frame),
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
        # The spec marks calendar columns; the bundle does not record them (yet), so
        # the project's current spec decides how monitoring treats them.
        seasonal=list(project.spec.data.features.seasonal),
    )
    return Monitored(project, mon, bundle, version)


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


def predict_rows(bundle: Bundle, version: int | None, rows: pd.DataFrame) -> pd.DataFrame:
    """The model's predictions on ROWS: the baseline for prediction drift (and CBPE).

    Columns ``prediction`` (text label, or float for regression) and, for a
    binary model, ``probability`` of the positive class.

    Example:
        >>> predict_rows(opened.bundle, opened.version, frame).columns.tolist()
        ['prediction', 'probability']
    """
    import pandas as pd

    from mlcycle.serve import ModelRuntime

    runtime = ModelRuntime.load(bundle.folder, version, warmup=False)
    frame = runtime.check_rows(rows[runtime.features]).frame
    labels, proba = runtime.predict_arrays(frame)
    out = pd.DataFrame({"prediction": [str(v) for v in labels]})
    if runtime.meta.task == "regression":
        out["prediction"] = pd.Series(labels, dtype="float64")
    if proba is not None and runtime.positive_index is not None:
        out["probability"] = proba[:, runtime.positive_index]
    return out
