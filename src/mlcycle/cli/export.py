"""`mlcycle models export`: a registered model as an embedded ONNX file with a parity report.

Parity is checked on the model's holdout rows: the test split its evaluation
scored, found through the bundle's lineage (bundle → evaluation → splits).
Only when the lineage has no holdout (a bundle registered by hand, a pruned
store) does it fall back to the bundle's reference sample, and the report's
``source`` says so. ``--holdout FILE`` overrides both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlcycle.cli.common import JsonOption, SpecOption, console, handle_errors, print_json
from mlcycle.errors import BadInput


@handle_errors
def export(
    model: str = typer.Argument(..., help="models:/NAME@ALIAS or NAME/VERSION."),
    format: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the export into."),
    holdout: Path | None = typer.Option(
        None,
        "--holdout",
        help="Parquet rows to check parity on (default: the model's holdout split, "
        "else the bundle's reference sample).",
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Export a model as model.onnx + schema + manifest + parity report; refused if parity fails.

    Example: mlcycle models export flights@champion --format onnx --out exported/
    """
    import json

    import pandas as pd

    from mlcycle.bundle import ONNX_MANIFEST_FILE, ONNX_MODEL_FILE
    from mlcycle.cli.common import load_project
    from mlcycle.registry.export import HOLDOUT, REFERENCE_SAMPLE, export_bundle

    if format != "onnx":
        raise BadInput(f"unknown export format '{format}'", "supported: onnx", "pass --format onnx")
    project = load_project(spec)
    resolved, bundle = project.registry.bundle(model)
    if holdout is not None:
        source, kind = holdout, "given"  # "parity on N given rows"
    else:
        found = holdout_split(project, resolved.bundle_id)
        if found is not None:
            source, kind = found, HOLDOUT
        else:
            source, kind = bundle.reference_path, REFERENCE_SAMPLE
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
    report = export_bundle(bundle.folder, rows, out, rows_source=kind)
    # The export folder has the layout of a bundle's ONNX part.
    manifest_path = out / ONNX_MANIFEST_FILE
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
        f"exported {resolved.name} v{resolved.version} → {out}/{ONNX_MODEL_FILE}; parity on "
        f"{report['rows']} {kind} rows: max |Δp| {report['max_abs_diff']:.2e}, label agreement "
        f"{report['label_agreement']:.4f}"
    )


def holdout_split(project: Any, bundle_id: str) -> Path | None:
    """The test split the bundle's evaluation scored, if the store still has it.

    Example:
        >>> holdout_split(project, resolved.bundle_id)
        PosixPath('.mlcycle/artifacts/3f/…/test.parquet')
    """
    store = project.store
    try:
        evaluation = _parent(store, bundle_id, "evaluation")
        splits = _parent(store, evaluation, "splits") if evaluation else None
        path = store.path(splits) / "test.parquet" if splits else None
    except Exception:  # a pruned or foreign store: fall back to the reference sample
        return None
    return path if path is not None and path.is_file() else None


def _parent(store: Any, child: str, role: str) -> str | None:
    return next((parent for r, parent, _ in store.parents(child) if r == role), None)
