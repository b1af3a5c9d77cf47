"""`mlcycle models …`: the registry from the command line."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    fmt,
    handle_errors,
    load_project,
    print_json,
)
from mlcycle.errors import BadInput
from mlcycle.local_store import DB_FILE, STORE_DIR

app = typer.Typer(
    help="Registered models: versions, aliases, promotion and rollback.", no_args_is_help=True
)


@app.command("list")
@handle_errors
def list_models(spec: Path = SpecOption, as_json: bool = JsonOption) -> None:
    """List registered models and their versions.

    Example: mlcycle models list --json
    """
    data = registered_versions(spec)
    if as_json:
        print_json(data)
        return
    table = Table(title="registered models")
    for col in ("model", "version", "aliases", "blessed", "created", "bundle"):
        table.add_column(col)
    for name, versions in data.items():
        for v in versions:
            table.add_row(
                name,
                str(v["version"]),
                ", ".join(v["aliases"]),
                str(v["blessed"]),
                v["created_at"],
                v["bundle_id"][:12],
            )
    console.print(table)


# One query for every model with its versions, one for the aliases: plain SQL that
# SQLite and PostgreSQL both run, so the default store is read with the standard
# library's sqlite3 (no SQLAlchemy, no project load and so no pandas: `models list` is an
# everyday command and those imports cost two thirds of its time; docs/evaluation.md).
_VERSIONS_SQL = (
    "SELECT r.name, v.version, v.bundle_id, v.blessed, v.created_at "
    "FROM registered_models r LEFT JOIN model_versions v ON v.name = r.name "
    "ORDER BY r.name, v.version"
)
_ALIASES_SQL = "SELECT name, alias, version FROM aliases ORDER BY alias"


def registered_versions(spec: Path) -> dict[str, list[dict[str, Any]]]:
    """Every registered model with its versions (name, version, bundle_id, blessed,
    created_at, aliases), as ``Registry.versions`` gives them, read without loading the
    project: only the spec's folder matters, so a spec being edited does not block it.

    Example:
        >>> registered_versions(Path("mlcycle.yaml"))["flights"][0]["aliases"]
        ['champion']
    """
    spec_path = spec / "mlcycle.yaml" if spec.is_dir() else spec
    if not spec_path.is_file():
        raise BadInput(
            f"spec file {spec_path} not found",
            "mlcycle reads the project from a mlcycle.yaml file",
            "run `mlcycle init DIR --example flights` or pass --spec PATH",
        )
    base = spec_path.resolve().parent
    if os.environ.get("MLCYCLE_STORE_URL"):
        from mlcycle.store import Store

        store = Store.open(base)
        with store.engine.connect() as conn:
            versions = [tuple(r) for r in conn.exec_driver_sql(_VERSIONS_SQL)]
            aliases = [tuple(r) for r in conn.exec_driver_sql(_ALIASES_SQL)]
        store.close()
    else:
        db = base / STORE_DIR / DB_FILE  # spelled in local_store: no SQLAlchemy import
        if not db.is_file():
            return {}  # no store yet: nothing registered (Store.open would create it empty)
        lite = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
        try:
            versions = lite.execute(_VERSIONS_SQL).fetchall()
            aliases = lite.execute(_ALIASES_SQL).fetchall()
        except sqlite3.OperationalError as exc:
            raise BadInput(
                f"cannot read the model registry in {db}", str(exc), "run `mlcycle run` once"
            ) from None
        finally:
            lite.close()
    by_version: dict[tuple[str, int], list[str]] = {}
    for name, alias, version in aliases:
        by_version.setdefault((str(name), int(version)), []).append(str(alias))
    data: dict[str, list[dict[str, Any]]] = {}
    for name, version, bundle_id, blessed, created_at in versions:
        rows = data.setdefault(str(name), [])
        if version is None:
            continue  # a model registered without versions yet
        rows.append(
            {
                "name": str(name),
                "version": int(version),
                "bundle_id": str(bundle_id),
                "blessed": bool(blessed),
                "created_at": str(created_at),
                "aliases": sorted(by_version.get((str(name), int(version)), [])),
            }
        )
    return data


def _show_data(project: Any, ref: str) -> dict[str, Any]:
    resolved, bundle = project.registry.bundle(ref)
    meta = bundle.meta()
    blessing = bundle.blessing()
    evaluation = bundle.evaluation().model_dump(mode="json")
    aliases = next(
        v.aliases for v in project.registry.versions(resolved.name) if v.version == resolved.version
    )
    return {
        "name": resolved.name,
        "version": resolved.version,
        "aliases": aliases,
        "blessed": resolved.blessed,
        "bundle_id": resolved.bundle_id,
        "bundle_path": str(bundle.folder),
        "metrics": meta.metrics,
        "baseline_metrics": meta.baseline_metrics,
        "intervals": evaluation.get("intervals", {}).get("candidate", {}),
        "confidence": evaluation.get("confidence"),
        "benefit": evaluation.get("benefit"),
        # What serving labels with (None: the most probable class).
        "decision_threshold": meta.decision_threshold,
        "features": meta.features,
        "dataset_id": meta.dataset_id,
        "git_sha": meta.git_sha,
        "checks": [c.model_dump(mode="json") for c in blessing.checks],
        "champion_version": blessing.champion_version,
        "report": str(bundle.report_html_path) if bundle.report_html_path.is_file() else None,
        "model_card": str(bundle.card_path),
        "lineage": bundle.lineage() if bundle.lineage_path.is_file() else None,
        "fast_paths": _fast_paths(bundle),
    }


def _fast_paths(bundle: Any) -> dict[str, Any]:
    """What the bundle carries besides the pipeline: the ONNX export and the native model."""
    found: dict[str, Any] = {"onnx": None, "native": None}
    for name, path in (
        ("onnx", bundle.onnx_manifest_path),
        ("native", bundle.native_manifest_path),
    ):
        if not path.is_file():
            continue
        manifest = json.loads(path.read_text(encoding="utf-8"))
        parity = manifest.get("parity") or {}
        found[name] = {
            "max_abs_diff": parity.get("max_abs_diff"),
            "parity_rows": parity.get("rows"),
            "platform": manifest.get("platform"),  # native only: where it loads
        }
    return found


@app.command()
@handle_errors
def show(
    ref: str = typer.Argument(..., help="models:/NAME@ALIAS, NAME/VERSION or NAME (its champion)."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one version: holdout metrics beside the baseline's, and the gate's checks.

    Example: mlcycle models show flights@champion
    """
    data = _show_data(load_project(spec), ref)
    if as_json:
        print_json(data)
        return
    console.print(
        f"[bold]{data['name']} v{data['version']}[/] aliases={data['aliases'] or '-'} "
        f"blessed={data['blessed']} bundle={data['bundle_id'][:12]}"
    )
    level = f"{data['confidence']:.0%} " if data.get("confidence") else ""
    table = Table(title="holdout metrics")
    for col in ("metric", "model", f"{level}interval", "baseline"):
        table.add_column(col)
    for name, value in data["metrics"].items():
        ci = data["intervals"].get(name)
        table.add_row(
            name,
            fmt(value),
            "" if not ci else f"{ci[0]:.4f} … {ci[1]:.4f}",
            fmt(data["baseline_metrics"].get(name, "")),
        )
    console.print(table)
    if data["decision_threshold"] is not None:
        console.print(
            f"decision threshold: {data['decision_threshold']:.4f} (P(positive) ≥ it → positive)",
            highlight=False,
        )
    for check in data["checks"]:
        mark = "[green]✔[/]" if check["passed"] else "[red]✘[/]"
        console.print(f"{mark} {check['name']}: {check['detail']}", highlight=False)
    paths = data["fast_paths"]
    shown = [
        f"{name} (max |Δ| {info['max_abs_diff']:.2g}"
        + (f", {info['platform']})" if info.get("platform") else ")")
        for name, info in paths.items()
        if info and info.get("max_abs_diff") is not None
    ]
    console.print(
        "fast paths: " + (", ".join(shown) if shown else "none (scikit-learn scores it)"),
        highlight=False,
    )
    console.print(f"bundle: {data['bundle_path']}", highlight=False, soft_wrap=True)
    if data["report"]:
        console.print(f"report: {data['report']}", highlight=False, soft_wrap=True)
    console.print(f"model card: {data['model_card']}", highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def promote(
    name: str = typer.Argument(..., help="Registered model name."),
    version: int = typer.Argument(..., help="Version to promote."),
    alias: str = typer.Option("champion", "--alias", help="Alias to move."),
    reason: str = typer.Option("", "--reason", help="Why; recorded in the history."),
    force: bool = typer.Option(
        False, "--force", help="Promote a version that did not pass the gate."
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Point an alias (default: champion) at a version; refuses unblessed versions unless forced.

    Example: mlcycle models promote flights 3 --reason "re-trained on July"
    """
    project = load_project(spec)
    registry = project.registry
    # A compare-and-set on what this command read: if another promotion lands
    # between the read and the write, this one fails instead of overwriting it.
    seen = registry.alias_version(name, alias) if name in registry.models() else None
    previous = registry.promote(
        name, version, alias=alias, reason=reason, force=force, expected=seen
    )
    result = {"name": name, "alias": alias, "from": previous, "to": version, "forced": force}
    if as_json:
        print_json(result)
    else:
        shown = "nothing" if previous is None else f"v{previous}"
        console.print(f"{name}@{alias}: {shown} → v{version}", highlight=False)


@app.command()
@handle_errors
def rollback(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str = typer.Option("champion", "--alias", help="Alias to roll back."),
    reason: str = typer.Option("", "--reason", help="Why; recorded in the history."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Restore the version an alias pointed at before its last move.

    Example: mlcycle models rollback flights --reason "latency regression"
    """
    project = load_project(spec)
    current, previous = project.registry.rollback(name, alias=alias, reason=reason)
    if as_json:
        print_json({"name": name, "alias": alias, "from": current, "to": previous})
    else:
        console.print(f"{name}@{alias}: v{current} → v{previous} (rolled back)")


@app.command()
@handle_errors
def history(
    name: str = typer.Argument(..., help="Registered model name."),
    alias: str | None = typer.Option(None, "--alias", help="Only this alias."),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Every alias move: when, who, from, to, why.

    Example: mlcycle models history flights
    """
    project = load_project(spec)
    events = project.registry.history(name, alias)
    if as_json:
        print_json(events)
        return
    table = Table(title=f"alias history of {name}")
    for col in ("when", "alias", "action", "from", "to", "who", "forced", "why"):
        table.add_column(col)
    for e in events:
        table.add_row(
            e["at"],
            e["alias"],
            str(e.get("action", "promote")),
            str(e["from_version"] or "-"),
            str(e["to_version"]),
            e["actor"],
            str(e["forced"]),
            e["reason"],
        )
    console.print(table)


# `models export` has a module of its own (ONNX and its parity report); registered here
# so the group is whole wherever it is loaded (the root loads groups lazily).
from mlcycle.cli.export import export  # noqa: E402

app.command("export")(export)
