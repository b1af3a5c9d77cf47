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

BUNDLE_ENV = "MLCYCLE_SERVE_BUNDLE"
VERSION_ENV = "MLCYCLE_SERVE_VERSION"
BODY_ENV = "MLCYCLE_SERVE_MAX_BODY"


def resolve_bundle(model: str, spec: Path) -> tuple[Path, int | None, Any]:
    """A model reference (or a bundle folder) → (bundle folder, version, project or None)."""
    as_path = Path(model)
    if as_path.is_dir() and (as_path / "meta.json").is_file():
        return as_path, None, None
    from mlcycle.cli.common import load_project

    project = load_project(spec)
    resolved, folder = project.bundle(model)
    return folder, resolved.version, project


def app_factory() -> Any:
    """Build the ASGI app from environment variables (used by uvicorn workers)."""
    from mlcycle.serve import ModelRuntime, create_app

    version = os.environ.get(VERSION_ENV)
    runtime = ModelRuntime.load(Path(os.environ[BUNDLE_ENV]), int(version) if version else None)
    return create_app(runtime, max_body_bytes=int(os.environ.get(BODY_ENV, "10000000")))


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
) -> None:
    """Serve a model over REST: /predict and the Open Inference Protocol v2.

    Example: mlcycle serve models:/flights@champion --port 8000
    """
    import uvicorn

    from mlcycle.serve import ModelRuntime

    if not model:
        from mlcycle.cli.common import load_project

        model = f"{load_project(spec).name}@champion"
    folder, version, project = resolve_bundle(model, spec)
    settings = project.spec.serve if project is not None else None
    host = host or (settings.host if settings else "127.0.0.1")
    port = port or (settings.port if settings else 8000)
    max_body = settings.max_body_bytes if settings else 10_000_000
    ModelRuntime.load(folder, version)  # fail here, clearly, before binding the port
    os.environ[BUNDLE_ENV] = str(folder)
    os.environ[BODY_ENV] = str(max_body)
    if version is not None:
        os.environ[VERSION_ENV] = str(version)
    err_console.print(f"serving {model} (v{version}) on http://{host}:{port}  docs: /docs")
    uvicorn.run(
        "mlcycle.cli.serve:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


@handle_errors
def predict(
    model: str = typer.Argument(..., help="models:/NAME@ALIAS, NAME/VERSION or a bundle folder."),
    input: str = typer.Option(..., "--input", "-i", help="Parquet or CSV file, folder or glob."),
    output: str = typer.Option(..., "--output", "-o", help="Parquet or CSV file to write."),
    chunk_rows: int = typer.Option(100_000, "--chunk-rows", min=1, help="Rows per chunk."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Batch prediction: score a file in chunks; rows that break the contract go to a reject file.

    Example: mlcycle predict flights@champion -i data/flights_future.parquet -o preds.parquet
    """
    from rich.progress import Progress

    from mlcycle.serve import ModelRuntime, predict_file

    folder, version, _ = resolve_bundle(model, spec)
    runtime = ModelRuntime.load(folder, version)
    if Path(output).resolve() == Path(input).resolve():
        raise BadInput(
            "--output is the same file as --input",
            "the input would be overwritten",
            "write the predictions to another file",
        )
    if "://" not in output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    with Progress(console=err_console, transient=True, disable=as_json) as progress:
        task = progress.add_task("scoring", total=None)
        result = predict_file(
            runtime,
            input,
            output,
            chunk_rows=chunk_rows,
            progress=lambda rows: progress.advance(task, rows),
        )
    if as_json:
        print_json(result)
        return
    console.print(
        f"scored {result['rows']} rows in {result['seconds']:.2f}s → {result['output']}"
        + (f"; {result['rejected']} rejected → {result['rejects']}" if result["rejected"] else "")
    )
