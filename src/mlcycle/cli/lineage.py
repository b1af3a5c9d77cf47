"""`mlcycle lineage REF`: from a model version, alias, run or data version down to the
data and code that produced it (and, for data, up to the models built on it); and from
one logged prediction (``prediction:<request_id>[/<row_id>]``) to the model version,
bundle, gate, training data version and git commit behind it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.tree import Tree

from mlcycle.cli.common import (
    JsonOption,
    SpecOption,
    console,
    handle_errors,
    load_project,
    print_json,
)
from mlcycle.errors import BadInput, NotFound

if TYPE_CHECKING:
    import pandas as pd

_MODEL_HINTS = (":", "@", "/")
PREDICTION_PREFIX = "prediction:"
_SHOWN_ROWS = 5  # logged rows printed as text (one table each); --json carries up to _JSON_ROWS
_JSON_ROWS = 1000


def _add(node: Tree, entry: dict[str, Any]) -> None:
    summary = ", ".join(f"{k}={v}" for k, v in entry["summary"].items())
    branch = node.add(f"[bold]{entry['role']}[/] {entry['kind']} {entry['id'][:12]} {summary}")
    for child in entry.get("inputs", []):
        _add(branch, child)


def lineage(
    ref: str = typer.Argument(
        ...,
        help="A model version or alias (models:/NAME@ALIAS, NAME/3, NAME), a pipeline run id, "
        "an artifact id such as a dataset version (6+ leading characters), or a logged "
        "prediction: prediction:REQUEST_ID or prediction:REQUEST_ID/ROW_ID.",
    ),
    spec: Path = SpecOption,
    as_json: bool = JsonOption,
) -> None:
    """Trace a model version, alias, run, data version or logged prediction to what made it.

    Example: mlcycle lineage models:/flights@champion
    Example: mlcycle lineage prediction:3f2a9c0e4b1d/1042
    """
    _lineage(ref, spec, as_json)


@handle_errors
def _lineage(ref: str, spec: Path, as_json: bool) -> None:
    from mlcycle.store import queries  # SQLAlchemy only when the command runs

    project = load_project(spec)
    if ref.startswith(PREDICTION_PREFIX):
        _prediction_lineage(project, ref.removeprefix(PREDICTION_PREFIX), as_json)
        return
    if any(h in ref for h in _MODEL_HINTS) or ref in project.registry.models():
        _model_lineage(project, ref, as_json)
        return
    run = queries.run_by_prefix(project.store, ref)
    if run is not None:
        _run_lineage(project, run, as_json)
        return
    _artifact_lineage(project, ref, as_json)


def _model_data(project: Any, ref: str) -> dict[str, Any]:
    """A model version's lineage: the artifact tree behind its bundle and its lineage record."""
    resolved, bundle = project.registry.bundle(ref)
    data: dict[str, Any] = project.store.lineage(resolved.bundle_id)
    data["model"] = {
        "name": resolved.name,
        "version": resolved.version,
        "blessed": resolved.blessed,
        "bundle_id": resolved.bundle_id,
        "bundle_path": str(bundle.folder),
    }
    data["lineage"] = bundle.lineage() if bundle.lineage_path.is_file() else None
    return data


def _model_tree(data: dict[str, Any]) -> Tree:
    model = data["model"]
    tree = Tree(f"[bold]{model['name']} v{model['version']}[/] (blessed={model['blessed']})")
    record = data["lineage"] or {}
    for key in ("run_id", "git_sha", "spec_hash", "dataset_id", "watermark"):
        if record.get(key):
            tree.add(f"{key}: {record[key]}")
    if record.get("partitions"):
        tree.add(f"raw partitions: {len(record['partitions'])}")
    _add(tree, data)
    return tree


def _model_lineage(project: Any, ref: str, as_json: bool) -> None:
    """A model version: the artifacts behind its bundle, and the bundle's lineage record."""
    data = _model_data(project, ref)
    if as_json:
        print_json(data)
        return
    console.print(_model_tree(data))


def _prediction_lineage(project: Any, ref: str, as_json: bool) -> None:
    """Logged rows of one request (or one row of it) and the model version behind each."""
    import json

    from mlcycle.predlog import predictions_root

    request_id, _, row_id = ref.partition("/")
    if not request_id:
        raise BadInput(
            "prediction: needs a request id",
            "a logged prediction is found by the id of the request that made it",
            "use prediction:REQUEST_ID or prediction:REQUEST_ID/ROW_ID "
            "(the request_id of the response, or the X-Request-ID you sent)",
        )
    root = predictions_root(project.store.home)
    rows = find_logged_rows(root, request_id, row_id or None)
    versions = []
    for (name, version), part in rows.groupby(["model", "model_version"], sort=True):
        entry = _version_evidence(project, str(name), int(str(version)))
        entry["roles"] = sorted(str(r) for r in part["role"].unique())
        versions.append(entry)
    records = json.loads(rows.head(_JSON_ROWS).to_json(orient="records", date_format="iso"))
    data = {
        "request_id": request_id,
        "row_id": row_id or None,
        "prediction_log": root,
        "rows_total": len(rows),
        "rows": records,
        "versions": versions,
    }
    if as_json:
        print_json(data)
        return
    _print_prediction(data)


def _version_evidence(project: Any, name: str, version: int) -> dict[str, Any]:
    """What made a logged row: the version's bundle, gate verdict, data version and commit."""
    try:
        data = _model_data(project, f"{name}/{version}")
    except NotFound:
        # Logged by a bundle of another project, or a version since deleted.
        return {"name": name, "version": version, "registered": False}
    from mlcycle.bundle import Bundle

    bundle = Bundle.open(data["model"]["bundle_path"])
    meta = bundle.meta()
    blessing = bundle.blessing()
    record = data["lineage"] or {}
    return {
        "name": name,
        "version": version,
        "registered": True,
        "bundle_id": data["model"]["bundle_id"],
        "bundle_path": data["model"]["bundle_path"],
        "gate": {
            "blessed": blessing.blessed,
            "champion_version": blessing.champion_version,
            "failed_checks": [c.model_dump(mode="json") for c in blessing.failures],
            "checks": len(blessing.checks),
        },
        "dataset_id": record.get("dataset_id") or meta.dataset_id,
        "git_sha": record.get("git_sha") or meta.git_sha,
        "run_id": record.get("run_id"),
        "spec_hash": meta.spec_hash,
        "tree": data,
    }


def _print_prediction(data: dict[str, Any]) -> None:
    rows = data["rows"]
    what = f"row {data['row_id']} of request" if data["row_id"] else "request"
    console.print(
        f"[bold]{what} {data['request_id']}[/]: {data['rows_total']:,} logged row(s) in "
        f"{data['prediction_log']}",
        highlight=False,
    )
    # One row per table, column by column: a log row has every feature, too wide to lay out.
    for row in rows[:_SHOWN_ROWS]:
        table = Table(show_header=False, box=None, padding=(0, 1))
        for key, value in row.items():
            table.add_row(f"  {key}", "" if value is None else str(value))
        console.print(table)
        console.print()
    if data["rows_total"] > _SHOWN_ROWS:
        console.print(f"… {data['rows_total'] - _SHOWN_ROWS:,} more rows (--json shows more)")
    for v in data["versions"]:
        if not v["registered"]:
            console.print(
                f"[yellow]{v['name']} v{v['version']} is not registered in this project[/]"
            )
            continue
        tree = Tree(
            f"[bold]made by {v['name']} v{v['version']}[/] ({', '.join(v['roles'])})",
            highlight=False,
        )
        tree.add(f"bundle: {v['bundle_id']} ({v['bundle_path']})")
        gate = v["gate"]
        verdict = "blessed" if gate["blessed"] else "NOT blessed"
        failed = "; ".join(c.get("name", "?") for c in gate["failed_checks"])
        failed = f", failed: {failed}" if failed else ""
        against = gate["champion_version"]
        judged = f" against champion v{against}" if against else ""
        tree.add(f"gate: {verdict}{judged} ({gate['checks']} checks{failed})")
        tree.add(f"training data version: {v['dataset_id']}")
        tree.add(f"git commit: {v['git_sha'] or 'n/a (not trained in a git checkout)'}")
        if v["run_id"]:
            tree.add(f"pipeline run: {v['run_id']}")
        tree.add(f"more: mlcycle lineage {v['name']}/{v['version']}")
        console.print(tree)


def find_logged_rows(root: str, request_id: str, row_id: str | None = None) -> pd.DataFrame:
    """The rows of the prediction log at ``root`` with this request id (and row id).

    :func:`mlcycle.store.prediction_rows.find_logged_rows`, which the dashboard
    shares; imported when called so the CLI starts without the data stack.

    Example:
        >>> find_logged_rows(".mlcycle/predictions", "3f2a9c0e4b1d")[["model", "prediction"]]
    """
    from mlcycle.store.prediction_rows import find_logged_rows as find

    return find(root, request_id, row_id)


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
