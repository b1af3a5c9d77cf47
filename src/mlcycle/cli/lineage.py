"""`mlcycle lineage REF`: from a model version, alias, run or data version down to the
data and code that produced it (and, for data, up to the models built on it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.tree import Tree

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    handle_errors,
    load_project,
    print_json,
)
from mlcycle.errors import NotFound

_MODEL_HINTS = (":", "@", "/")


def _add(node: Tree, entry: dict[str, Any]) -> None:
    summary = ", ".join(f"{k}={v}" for k, v in entry["summary"].items())
    branch = node.add(f"[bold]{entry['role']}[/] {entry['kind']} {entry['id'][:12]} {summary}")
    for child in entry.get("inputs", []):
        _add(branch, child)


def lineage(
    ref: str = typer.Argument(
        ...,
        help="A model version or alias (models:/NAME@ALIAS, NAME/3, NAME), a pipeline run id "
        "or an artifact id such as a dataset version (6+ leading characters).",
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Trace a model version, alias, run or data version down to the data and code behind it.

    Example: mlcycle lineage models:/flights@champion
    """
    _lineage(ref, spec, as_json)


@handle_errors
def _lineage(ref: str, spec: Path, as_json: bool) -> None:
    from mlcycle.store import queries  # SQLAlchemy only when the command runs

    project = load_project(spec)
    if any(h in ref for h in _MODEL_HINTS) or ref in project.registry.models():
        _model_lineage(project, ref, as_json)
        return
    run = queries.run_by_prefix(project.store, ref)
    if run is not None:
        _run_lineage(project, run, as_json)
        return
    _artifact_lineage(project, ref, as_json)


def _model_lineage(project: Any, ref: str, as_json: bool) -> None:
    """A model version: the artifacts behind its bundle, and the bundle's lineage record."""
    resolved, bundle = project.registry.bundle(ref)
    data = project.store.lineage(resolved.bundle_id)
    data["model"] = {
        "name": resolved.name,
        "version": resolved.version,
        "blessed": resolved.blessed,
        "bundle_id": resolved.bundle_id,
    }
    data["lineage"] = bundle.lineage() if bundle.lineage_path.is_file() else None
    if as_json:
        print_json(data)
        return
    tree = Tree(f"[bold]{resolved.name} v{resolved.version}[/] (blessed={resolved.blessed})")
    record = data["lineage"] or {}
    for key in ("run_id", "git_sha", "spec_hash", "dataset_id", "watermark"):
        if record.get(key):
            tree.add(f"{key}: {record[key]}")
    if record.get("partitions"):
        tree.add(f"raw partitions: {len(record['partitions'])}")
    _add(tree, data)
    console.print(tree)


def _run_lineage(project: Any, run: dict[str, Any], as_json: bool) -> None:
    """A pipeline run: its steps, what they produced, and the versions it registered."""
    from mlcycle.store import queries  # SQLAlchemy only when the command runs

    store = project.store
    steps = queries.run_outputs(project.store, run["id"])
    produced = [a for s in steps for a in s["outputs"].values()]
    bundles = [a for a in produced if store.has(a) and store.kind(a) == "bundle"]
    versions = queries.versions_of(project.store, bundles)
    last = produced[-1] if produced else None
    behind: dict[str, Any] | None = store.lineage(last) if last else None
    data = {"run": run, "steps": steps, "versions": versions, "tree": behind}
    if as_json:
        print_json(data)
        return
    tree = Tree(
        f"[bold]run {run['id']}[/] {run['status']} started {run['started_at']} "
        f"git={run.get('git_sha') or 'n/a'} spec={run['spec_hash'][:12]}"
    )
    for s in steps:
        outs = ", ".join(f"{k}={v[:12]}" for k, v in s["outputs"].items())
        tree.add(f"{s['step']} {s['status']} {outs}")
    for v in versions:
        tree.add(f"registered {v['name']} v{v['version']}")
    if behind:
        _add(tree, behind)
    console.print(tree)


def _artifact_lineage(project: Any, ref: str, as_json: bool) -> None:
    """Any other artifact (a dataset version): what it came from and what was built on it."""
    from mlcycle.store import queries  # SQLAlchemy only when the command runs

    store = project.store
    try:
        root = store.resolve(ref)
    except NotFound:
        raise NotFound(
            f"nothing called {ref!r} to trace",
            "it is not a registered model, a pipeline run id or an artifact id",
            "try `mlcycle models list`, `mlcycle steps` or `mlcycle data versions`",
        ) from None
    data = store.lineage(root)
    used_by = queries.descendants(project.store, root)
    data["used_by"] = used_by
    data["versions"] = queries.versions_of(
        project.store, [u["id"] for u in used_by if u["kind"] == "bundle"]
    )
    if as_json:
        print_json(data)
        return
    tree = Tree(f"[bold]{data['kind']} {root[:12]}[/]")
    _add(tree, data)
    if used_by:
        users = tree.add("[bold]used by[/]")
        for u in used_by[:50]:
            users.add(f"{u['kind']} {u['id'][:12]} (as {u['role']})")
        for v in data["versions"]:
            users.add(f"model {v['name']} v{v['version']}")
    console.print(tree)
