"""`mlcycle lineage REF`: from a model version, alias, run or data version down to the
data and code that produced it (and, for data, up to the models built on it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
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
from mlcycle.store import tables as t

_MODEL_HINTS = (":", "@", "/")


def _run_row(project: Any, ref: str) -> dict[str, Any] | None:
    if len(ref) < 6:
        return None
    with project.store.engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(t.pipeline_runs)
                .where(t.pipeline_runs.c.id.startswith(ref, autoescape=True))
                .limit(2)
            )
            .mappings()
            .all()
        )
    return dict(rows[0]) if len(rows) == 1 else None


def _run_outputs(project: Any, run_id: str) -> list[dict[str, Any]]:
    """Each step of a run with the artifacts it produced or took from cache."""
    with project.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.step_runs.c.step, t.step_runs.c.status, t.step_cache.c.outputs)
            .select_from(
                t.step_runs.outerjoin(
                    t.step_cache, t.step_cache.c.cache_key == t.step_runs.c.cache_key
                )
            )
            .where(t.step_runs.c.pipeline_run_id == run_id)
            .order_by(t.step_runs.c.id)
        ).all()
    return [
        {"step": r[0], "status": r[1], "outputs": json.loads(r[2]) if r[2] else {}} for r in rows
    ]


def _versions_of(project: Any, bundle_ids: list[str]) -> list[dict[str, Any]]:
    if not bundle_ids:
        return []
    with project.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                t.model_versions.c.name, t.model_versions.c.version, t.model_versions.c.bundle_id
            )
            .where(t.model_versions.c.bundle_id.in_(bundle_ids))
            .order_by(t.model_versions.c.name, t.model_versions.c.version)
        ).all()
    return [{"name": r[0], "version": r[1], "bundle_id": r[2]} for r in rows]


def _descendants(project: Any, artifact_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """Artifacts built (directly or not) from ``artifact_id``: what a data version fed."""
    found: dict[str, dict[str, Any]] = {}
    frontier = [artifact_id]
    with project.store.engine.connect() as conn:
        while frontier and len(found) < limit:
            rows = conn.execute(
                sa.select(t.edges.c.child, t.edges.c.role, t.artifacts.c.kind)
                .join(t.artifacts, t.artifacts.c.id == t.edges.c.child)
                .where(t.edges.c.parent.in_(frontier))
            ).all()
            frontier = []
            for child, role, kind in rows:
                if child not in found:
                    found[child] = {"id": child, "kind": kind, "role": role}
                    frontier.append(child)
    return list(found.values())


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
    project = load_project(spec)
    if any(h in ref for h in _MODEL_HINTS) or ref in project.registry.models():
        _model_lineage(project, ref, as_json)
        return
    run = _run_row(project, ref)
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
    store = project.store
    steps = _run_outputs(project, run["id"])
    produced = [a for s in steps for a in s["outputs"].values()]
    bundles = [a for a in produced if store.has(a) and store.kind(a) == "bundle"]
    versions = _versions_of(project, bundles)
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
    used_by = _descendants(project, root)
    data["used_by"] = used_by
    data["versions"] = _versions_of(project, [u["id"] for u in used_by if u["kind"] == "bundle"])
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
