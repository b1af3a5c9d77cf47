"""`mlcycle models export`: a registered model as an embedded ONNX file with a parity report."""

from __future__ import annotations

from pathlib import Path

import typer

from mlcycle.cli.common import JsonOption, SpecOption, console, handle_errors, print_json
from mlcycle.errors import BadInput


@handle_errors
def export(
    model: str = typer.Argument(..., help="models:/NAME@ALIAS or NAME/VERSION."),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the export into."),
    holdout: Path | None = typer.Option(
        None, "--holdout", help="Parquet rows to check parity on (default: the bundle's sample)."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Export a model as model.onnx + schema + manifest + parity report; refused if parity fails.

    Example: mlcycle models export flights@champion --format onnx --out exported/
    """
    import json

    import pandas as pd

    from mlcycle.cli.common import load_project
    from mlcycle.registry.export import export_bundle

    if format != "onnx":
        raise BadInput(f"unknown export format '{format}'", "supported: onnx", "pass --format onnx")
    project = load_project(spec)
    resolved, folder = project.bundle(model)
    source = holdout or folder / "reference.parquet"
    if not source.is_file():
        raise BadInput(
            f"no rows to check parity on: {source} not found",
            "the export is refused unless it reproduces scikit-learn on real rows",
            "pass --holdout FILE.parquet",
        )
    try:
        rows = pd.read_parquet(source)
    except Exception as exc:
        raise BadInput(f"cannot read {source}", str(exc), "pass a Parquet file") from None
    report = export_bundle(folder, rows, out)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["model_version"] = resolved.version
    manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    result = {
        "model": resolved.name,
        "version": resolved.version,
        "out": str(out),
        "files": sorted(p.name for p in out.iterdir()),
        "parity": report,
    }
    if as_json:
        print_json(result)
        return
    console.print(
        f"exported {resolved.name} v{resolved.version} → {out}/model.onnx; parity on "
        f"{report['rows']} rows: max |Δp| {report['max_abs_diff']:.2e}, label agreement "
        f"{report['label_agreement']:.4f}"
    )
