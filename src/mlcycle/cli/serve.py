"""`mlcycle serve` and `mlcycle predict`: the model as a REST service or a batch job."""

from __future__ import annotations

import os
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
from mlcycle.errors import BadInput

OutOfRangeOption = typer.Option(
    None,
    "--out-of-range",
    help="flag|reject: what to do with a number outside its training range (default: the "
    "bundle's policy, from spec serve.out_of_range). flag scores it and names it (a warning "
    "on the row; batch: the out_of_range column); reject refuses the row (HTTP 422; batch: "
    "the rejects file).",
)


def resolve_bundle(
    model: str, spec: Path, *, need_project: bool = True
) -> tuple[Path, int | None, Any]:
    """A model reference (or a bundle folder) → (bundle folder, version, project or None).

    The folder is verified against its content id before anything in it is
    read (a registered one against the registry's id; a plain folder only when
    it is named by its id, as in the store), so callers may load it with
    ``ModelRuntime.load(..., verify=False)``. With ``need_project=False`` a
    reference into the default local store is looked up with sqlite3
    (:func:`mlcycle.local_store.lookup_bundle`) and the project is not loaded
    (``None``): no SQLAlchemy, store or spec import; anything else goes
    through the registry as before.

    Example:
        >>> resolve_bundle("models:/flights@champion", Path("mlcycle.yaml"))[1]
        3
    """
    from mlcycle.bundle import Bundle  # pandas and pydantic: not for `mlcycle --help`

    as_path = Path(model)
    if Bundle.looks_like(as_path):
        Bundle(as_path).verify_addressed()
        return as_path, None, None
    if not need_project:
        from mlcycle.local_store import lookup_bundle

        spec_path = spec / "mlcycle.yaml" if spec.is_dir() else spec
        if spec_path.is_file():
            found = lookup_bundle(spec_path.resolve().parent, model)
            if found is not None:
                Bundle(found.folder).verify(found.bundle_id)
                return found.folder, found.version, None
    from mlcycle.cli.common import load_project

    project = load_project(spec)
    resolved, folder = project.bundle(model)
    Bundle(folder).verify(resolved.bundle_id)
    return folder, resolved.version, project


def batch_runtime(folder: Path, version: int | None, out_of_range: str | None, engine: str) -> Any:
    """The runtime a batch job scores with, loaded as cheaply as ``engine`` allows.

    A trusted ONNX export gives the plan and classes for any engine but
    ``sklearn`` (no scikit-learn import); ONNX Runtime is opened only if chunks
    are scored through it; no warm-up row (a batch has no first request to
    speed up). The folder was verified by :func:`resolve_bundle`.

    Example:
        >>> batch_runtime(Path("bundle"), 3, None, "auto").plan is not None
        True
    """
    from mlcycle.serve import ModelRuntime

    lazy = engine in ("auto", "onnx", "native")
    return ModelRuntime.load(
        folder,
        version,
        verify=False,
        out_of_range=out_of_range,
        from_export=lazy,
        lazy_onnx=lazy,
        warmup=False,
    )


def make_resolver(spec: Path, name: str, alias: str) -> Any:
    """role → (version, bundle folder): ``champion`` follows ``alias``, ``challenger`` its alias.

    Built here because serve must not import the registry stage.

    Example:
        >>> make_resolver(Path("mlcycle.yaml"), "flights", "champion")("challenger")
        (4, PosixPath('.mlcycle/artifacts/...'))
    """
    from mlcycle.pipeline.project import Project

    project = Project.load(spec)  # one engine for every poll (its pool is thread-safe)

    def resolve(role: str) -> tuple[int, Path] | None:
        version = project.registry.alias_version(name, alias if role == "champion" else role)
        if version is None:
            return None
        return version, project.bundle(f"{name}/{version}")[1]

    return resolve


def app_factory() -> Any:
    """Build the ASGI app from the settings in the environment (each uvicorn worker calls it).

    Example:
        $ MLCYCLE_SERVE_BUNDLE=bundle uvicorn --factory mlcycle.cli.serve:app_factory
    """
    from mlcycle.serve import ModelRuntime, PredictionLog, ServeSettings, create_app

    settings = ServeSettings.from_env()
    if settings.bundle is None:
        raise BadInput(
            "no model to serve",
            "MLCYCLE_SERVE_BUNDLE is not set",
            "start the server with `mlcycle serve`",
        )
    runtime = ModelRuntime.load(
        settings.bundle, settings.version, out_of_range=settings.out_of_range
    )
    resolver = None
    if settings.spec is not None and settings.alias is not None:
        resolver = make_resolver(settings.spec, runtime.meta.name, settings.alias)
    log = PredictionLog(settings.prediction_log) if settings.prediction_log else None
    return create_app(runtime, settings, resolver=resolver, prediction_log=log)


@handle_errors
def serve(
    model: str = typer.Argument(
        "",
        help="models:/NAME@ALIAS, NAME/VERSION or a bundle folder "
        "(default: the project's champion).",
    ),
    spec: Path = SpecOption,
    host: str | None = typer.Option(
        None, "--host", help="Bind address (default from spec: 127.0.0.1)."
    ),
    port: int | None = typer.Option(None, "--port", help="Port (default from spec: 8000)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    log: bool = typer.Option(
        True,
        "--log/--no-log",
        help="Write every prediction to the prediction log (.mlcycle/predictions, or "
        "MLCYCLE_PREDICTIONS_URL).",
    ),
    canary: float = typer.Option(
        0.0, "--canary", min=0.0, max=1.0, help="Share of requests the 'challenger' answers."
    ),
    shadow: bool = typer.Option(
        False, "--shadow", help="The 'challenger' also scores every request (logged, not returned)."
    ),
    poll: float = typer.Option(
        5.0, "--poll", min=0.0, help="Seconds between checks of the alias (0: never)."
    ),
    allow_public: bool = typer.Option(
        False,
        "--allow-public",
        help="Serve on a non-loopback address without MLCYCLE_PREDICT_TOKEN (anyone who can "
        "reach it can predict and write to the prediction log).",
    ),
    out_of_range: str | None = OutOfRangeOption,
) -> None:
    """Serve a model over REST: /predict and the Open Inference Protocol v2.

    Following an alias (models:/NAME@champion), the server swaps in a newly
    promoted version without downtime. Admin endpoints need MLCYCLE_ADMIN_TOKEN;
    set MLCYCLE_PREDICT_TOKEN to require a token for predictions too. A
    non-loopback --host needs MLCYCLE_PREDICT_TOKEN, or --allow-public.

    Example: mlcycle serve models:/flights@champion --port 8000 --canary 0.1
    """
    from mlcycle.predlog import ENV_URL, predictions_root
    from mlcycle.serve import ModelRuntime, ServeSettings
    from mlcycle.serve.http import check_bind, run_workers
    from mlcycle.serve.http.settings import PREDICT_TOKEN_ENV

    _check_policy(out_of_range)
    if not model:
        from mlcycle.cli.common import load_project

        model = f"{load_project(spec).name}@champion"
    folder, version, project = resolve_bundle(model, spec)
    spec_serve = project.spec.serve if project is not None else None
    host = host or (spec_serve.host if spec_serve else "127.0.0.1")
    port = port or (spec_serve.port if spec_serve else 8000)
    # Refused before the model is even loaded: the cheapest place to stop a mistake.
    warning = check_bind(
        host, predict_token=os.environ.get(PREDICT_TOKEN_ENV) or None, allow_public=allow_public
    )
    # Fail here, clearly, before binding the port (resolve_bundle verified the folder).
    runtime = ModelRuntime.load(folder, version, verify=False, out_of_range=out_of_range)
    alias = _alias_of(model) if project is not None else None
    log_root = None
    if log:
        home = project.store.home if project is not None else None
        log_root = predictions_root(home) if home is not None else os.environ.get(ENV_URL)
    settings = ServeSettings(
        max_body_bytes=spec_serve.max_body_bytes if spec_serve else 10_000_000,
        canary=canary,
        shadow=shadow,
        poll_seconds=poll,
        bundle=folder,
        version=version,
        spec=project.spec_path if project is not None and alias is not None else None,
        alias=alias,
        prediction_log=log_root,
        out_of_range=out_of_range,
    )
    os.environ.update(settings.to_env())  # the workers read their settings from here
    if warning is not None:
        err_console.print(f"[bold yellow]warning:[/] {warning}")
    err_console.print(f"serving {model} (v{version}) on http://{host}:{port}  docs: /docs")
    err_console.print(_policy_line(runtime, overridden=out_of_range is not None))
    run_workers(
        "mlcycle.cli.serve:app_factory", host, port, workers, factory=True, log_level="warning"
    )


def _policy_line(runtime: Any, *, overridden: bool) -> str:
    """The start-up line stating the out-of-range policy in force, and where it comes from."""
    source = "--out-of-range" if overridden else "the bundle's policy"
    seasonal = runtime.meta.seasonal
    return (
        f"out-of-range inputs: {runtime.out_of_range} ({source}; "
        f"{len(runtime.ranges)} feature(s) range-checked"
        + (f", seasonal not checked: {', '.join(seasonal)}" if seasonal else "")
        + ")"
    )


def _check_policy(out_of_range: str | None) -> None:
    """Refuse an unknown ``--out-of-range`` before anything is loaded (exit 2)."""
    if out_of_range is not None and out_of_range not in ("flag", "reject"):
        raise BadInput(
            f"--out-of-range {out_of_range!r} is not a policy",
            "a number outside its training range is either flagged or rejected",
            "pass --out-of-range flag or --out-of-range reject (or leave it out: the bundle's)",
        )


def _alias_of(model: str) -> str | None:
    """The alias a reference follows (``NAME`` alone means champion); ``None`` for a version."""
    ref = model.removeprefix("models:/")
    if "@" in ref:
        return ref.split("@", 1)[1] or None
    if "/" in ref:
        return None
    return "champion"


@handle_errors
def predict(
    model: str = typer.Argument(..., help="models:/NAME@ALIAS, NAME/VERSION or a bundle folder."),
    input: str = typer.Option(..., "--input", "-i", help="Parquet or CSV file, folder or glob."),
    output: str = typer.Option(..., "--output", "-o", help="Parquet or CSV file to write."),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", min=1, help="Rows per chunk."),
    spec: Path = SpecOption,
    log: bool = typer.Option(
        False, "--log", help="Also write the predictions to the prediction log (role 'batch')."
    ),
    engine: str = typer.Option(
        "auto",
        "--engine",
        help="auto: the model compiled to native code when the bundle has it for this "
        "platform, else ONNX when it matches scikit-learn within 1e-6; native: only the "
        "compiled model; onnx: any checked export; sklearn: neither; ray: on a Ray cluster "
        "(RAY_ADDRESS, else a local one; needs mlcycle[ray]).",
    ),
    out_of_range: str | None = OutOfRangeOption,
    as_json: bool = JsonOption,
) -> None:
    """Batch prediction: score a file in chunks; rows that break the contract go to a reject file.

    Example: mlcycle predict flights@champion -i data/flights_future.parquet -o preds.parquet
    """
    from rich.progress import Progress

    from mlcycle.serve import predict_file
    from mlcycle.serve.model import freeze_for_exit

    freeze_for_exit()  # at exit: the interpreter's shutdown need not walk the whole heap
    _check_policy(out_of_range)
    # Without --log nothing needs the project: a local registry is read with sqlite3.
    folder, version, project = resolve_bundle(model, spec, need_project=log)
    runtime = batch_runtime(folder, version, out_of_range, engine)
    if Path(output).resolve() == Path(input).resolve():
        raise BadInput(
            "--output is the same file as --input",
            "the input would be overwritten",
            "write the predictions to another file",
        )
    if "://" not in output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    prediction_log = None
    if log:
        from mlcycle.predlog import ENV_URL, predictions_root
        from mlcycle.serve import PredictionLog

        if project is None and not os.environ.get(ENV_URL):
            raise BadInput(
                "--log needs a place for the prediction log",
                "a bundle folder has no project",
                f"set {ENV_URL}, or pass a model reference of a project",
            )
        root = predictions_root(project.store.home) if project else os.environ[ENV_URL]
        prediction_log = PredictionLog(root)
    with Progress(console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("scoring", total=None)
        try:
            result = predict_file(
                runtime,
                input,
                output,
                chunk_rows=chunk_rows,
                progress=lambda rows: progress.advance(task, rows),
                prediction_log=prediction_log,
                on_total=lambda rows: progress.update(task, total=rows),
                engine=engine,
            )
        finally:
            if prediction_log is not None:
                prediction_log.close()
    if as_json:
        print_json(result)
        return
    console.print(
        f"scored {result['rows']} rows in {result['seconds']:.2f}s ({result['engine']})"
        f" → {result['output']}"
        + (f"; {result['rejected']} rejected → {result['rejects']}" if result["rejected"] else "")
    )
    flagged = result.get("out_of_range") or {}
    if flagged:
        counts = ", ".join(f"{name}: {n}" for name, n in sorted(flagged.items()))
        err_console.print(
            f"[bold yellow]warning:[/] values outside the training range were scored ({counts});"
            " the out_of_range column names them (--out-of-range reject refuses such rows)"
        )
