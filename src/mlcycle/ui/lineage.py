"""The lineage graph of a model version, an artifact or a logged prediction, laid out
and drawn as inline SVG.

Backwards from the root: the store's lineage edges (bundle → evaluation,
model, splits → dataset version), then the bundle's lineage record (raw
partitions, spec hash, git commit, pipeline run). Forwards: the alias moves
that deployed a model version, or the artifacts and model versions built on a
dataset version. A logged prediction (``prediction:REQ[/ROW]``) is the chain
``mlcycle lineage prediction:…`` prints: the logged rows, the model version of
each, and that version's graph. Every node links to its page.

Example:
    >>> graph = model_graph(store, "flights", 2)
    >>> svg = render(graph)
    >>> svg.count("<a ")  # one link per node
    11
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import quote

from mlcycle.errors import BadInput, NotFound
from mlcycle.registry.models import ModelRef, Registry
from mlcycle.store import Store, queries

PREDICTION_PREFIX = "prediction:"
SHOWN_ROWS = 5  # logged rows listed under the graph, as the CLI prints them

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 184, 46, 44, 14, 12
MAX_FORWARD = 24


@dataclass
class Node:
    id: str
    kind: str
    label: str
    href: str
    detail: str = ""
    depth: int = 0


@dataclass
class Graph:
    root: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)  # (from, to, role)

    def add(self, node: Node) -> Node:
        known = self.nodes.get(node.id)
        if known is None:
            self.nodes[node.id] = node
            return node
        known.depth = max(known.depth, node.depth)  # longest path: inputs stay left of users
        return known


def _artifact_href(kind: str, artifact_id: str, versions: dict[str, tuple[str, int]]) -> str:
    if kind == "dataset":
        return f"/data/{artifact_id}"
    if kind == "bundle" and artifact_id in versions:
        name, version = versions[artifact_id]
        return f"/models/{quote(name)}/{version}"
    return f"/lineage/{artifact_id}"


def _walk(graph: Graph, entry: dict[str, Any], depth: int, versions: dict[str, Any]) -> None:
    """Add a ``Store.lineage`` tree: each entry and, one column further left, its inputs."""
    summary = entry.get("summary", {})
    detail = ", ".join(
        f"{k}={str(v).rsplit('.', 1)[-1]}" for k, v in summary.items() if k in ("rows", "estimator")
    )
    graph.add(
        Node(
            entry["id"],
            entry["kind"],
            f"{entry['kind']} {entry['id'][:10]}",
            _artifact_href(entry["kind"], entry["id"], versions),
            detail,
            depth,
        )
    )
    for child in entry.get("inputs", []):
        _walk(graph, child, depth + 1, versions)
        graph.edges.add((child["id"], entry["id"], child["role"]))


def _record_nodes(graph: Graph, record: dict[str, Any], bundle_id: str) -> None:
    """The bundle's lineage record: partitions, spec, commit and pipeline run."""
    dataset_id = record.get("dataset_id")
    dataset = graph.nodes.get(dataset_id or "")
    base = dataset.depth + 1 if dataset else graph.nodes[bundle_id].depth + 1
    for partition in record.get("partitions", [])[:12]:
        node = graph.add(
            Node(
                f"partition:{partition}",
                "partition",
                f"partition {partition[:10]}",
                f"/data/{dataset_id}#partitions" if dataset_id else "/data",
                str(record.get("source") or ""),
                base,
            )
        )
        graph.edges.add((node.id, dataset_id or bundle_id, "partition"))
    extras = [
        ("spec", record.get("spec_hash"), "spec", "/pipeline"),
        ("git", record.get("git_sha"), "git commit", "/pipeline"),
        ("run", record.get("run_id"), "pipeline run", f"/pipeline#run-{record.get('run_id')}"),
    ]
    beside = graph.nodes[bundle_id].depth + 1
    for kind, value, title, href in extras:
        if value:
            node = graph.add(
                Node(f"{kind}:{value}", kind, f"{title} {str(value)[:10]}", href, "", beside)
            )
            graph.edges.add((node.id, bundle_id, kind))


def model_graph(store: Store, name: str, version: int) -> Graph:
    """Model version ``name``/``version``: back to its data and code, forward to its deployments."""
    from mlcycle.ui.readers import open_bundle

    registry = Registry(store)
    resolved = registry.resolve(ModelRef(name, version=version))
    root_id = f"model:{name}/{version}"
    graph = Graph(root_id)
    graph.add(
        Node(
            root_id,
            "model",
            f"{name} v{version}",
            f"/models/{quote(name)}/{version}",
            "blessed" if resolved.blessed else "not blessed",
            0,
        )
    )
    versions = {resolved.bundle_id: (name, version)}
    _walk(graph, store.lineage(resolved.bundle_id), 1, versions)
    graph.edges.add((resolved.bundle_id, root_id, "registered"))
    bundle = open_bundle(store, resolved.bundle_id)
    if bundle.lineage_path.is_file():
        _record_nodes(graph, bundle.lineage(), resolved.bundle_id)
    for event in registry.history(name):
        if event["to_version"] == version:
            node = graph.add(
                Node(
                    f"alias-event:{event['id']}",
                    "deployment",
                    f"{event['alias']} ({event.get('action', 'promote')})",
                    f"/models/{quote(name)}#history",
                    f"{str(event['at'])[:16].replace('T', ' ')} by {event['actor']}",
                    -1,
                )
            )
            graph.edges.add((root_id, node.id, "alias"))
    return graph


def artifact_graph(store: Store, ref: str) -> Graph:
    """Any artifact (a dataset version, an evaluation…): its inputs and what was built on it."""
    artifact_id = store.resolve(ref)
    graph = Graph(artifact_id)
    used_by = queries.descendants(store, artifact_id, limit=MAX_FORWARD)
    registered = queries.versions_of(store, [u["id"] for u in used_by if u["kind"] == "bundle"])
    versions = {v["bundle_id"]: (v["name"], v["version"]) for v in registered}
    _walk(graph, store.lineage(artifact_id), 0, versions)
    for u in used_by:
        graph.add(
            Node(u["id"], u["kind"], f"{u['kind']} {u['id'][:10]}",
                 _artifact_href(u["kind"], u["id"], versions), "", -1)
        )  # fmt: skip
    # What each user was built from, as far as it is in the graph: the forward edges.
    for u in used_by:
        for role, parent, _kind in store.parents(u["id"]):
            if parent in graph.nodes:
                graph.edges.add((parent, u["id"], role))
    for v in registered:
        node = graph.add(
            Node(f"model:{v['name']}/{v['version']}", "model", f"{v['name']} v{v['version']}",
                 f"/models/{quote(v['name'])}/{v['version']}", "", -2)
        )  # fmt: skip
        graph.edges.add((v["bundle_id"], node.id, "registered"))
    _relayer_forward(graph)
    return graph


@dataclass
class PredictionLineage:
    """A logged prediction's graph, its first logged rows and each model version's evidence."""

    graph: Graph
    request_id: str
    row_id: str | None
    rows_total: int
    rows: list[dict[str, Any]]
    versions: list[dict[str, Any]]


def _evidence(store: Store, name: str, version: int, roles: list[str]) -> dict[str, Any]:
    """What made a logged row, as the CLI lists it: bundle, gate verdict, data, commit."""
    from mlcycle.ui.readers import open_bundle

    try:
        resolved = Registry(store).resolve(ModelRef(name, version=version))
    except NotFound:
        # Logged by a bundle of another project, or a version since deleted.
        return {"name": name, "version": version, "roles": roles, "registered": False}
    bundle = open_bundle(store, resolved.bundle_id)
    meta, blessing = bundle.meta(), bundle.blessing()
    record = bundle.lineage() if bundle.lineage_path.is_file() else {}
    return {
        "name": name,
        "version": version,
        "roles": roles,
        "registered": True,
        "bundle_id": resolved.bundle_id,
        "blessed": blessing.blessed,
        "champion_version": blessing.champion_version,
        "failed_checks": [c.name for c in blessing.failures],
        "checks": len(blessing.checks),
        "dataset_id": record.get("dataset_id") or meta.dataset_id,
        "git_sha": record.get("git_sha") or meta.git_sha,
        "run_id": record.get("run_id"),
    }


def prediction_graph(store: Store, ref: str) -> PredictionLineage:
    """``REQ`` or ``REQ/ROW`` (after ``prediction:``): the logged rows of that request
    (or row), and for each model version that made them, its graph up to the data
    and the commit. Raises :class:`NotFound` for an id the log does not hold.

    Example:
        >>> found = prediction_graph(store, "replay-2013-07-0")
        >>> [n.kind for n in found.graph.nodes.values()][:2]
        ['prediction', 'model']
    """
    import json

    from mlcycle.predlog import predictions_root
    from mlcycle.store.prediction_rows import find_logged_rows

    request_id, _, row_id = ref.partition("/")
    if not request_id:
        raise BadInput(
            "prediction: needs a request id",
            "a logged prediction is found by the id of the request that made it",
            "use /lineage/prediction:REQUEST_ID or /lineage/prediction:REQUEST_ID/ROW_ID",
        )
    rows = find_logged_rows(predictions_root(store.home), request_id, row_id or None)
    root = f"{PREDICTION_PREFIX}{ref}"
    label = f"row {row_id} of {request_id}" if row_id else f"request {request_id}"
    graph = Graph(root)
    graph.add(
        Node(root, "prediction", label, f"/lineage/{quote(root, safe=':/')}",
             f"{len(rows):,} logged row(s)", 0)
    )  # fmt: skip
    versions = []
    for (name, version), part in rows.groupby(["model", "model_version"], sort=True):
        roles = sorted(str(r) for r in part["role"].unique())
        evidence = _evidence(store, str(name), int(str(version)), roles)
        versions.append(evidence)
        if not evidence["registered"]:
            node = graph.add(
                Node(f"model:{name}/{version}", "model", f"{name} v{version}", "/models",
                     "not registered here", 1)
            )  # fmt: skip
            graph.edges.add((node.id, root, ", ".join(roles)))
            continue
        sub = model_graph(store, str(name), int(str(version)))
        # The versions' deployments are the model's story, not this prediction's.
        kept = {i for i, n in sub.nodes.items() if n.kind != "deployment"}
        for node_id in kept:
            node = sub.nodes[node_id]
            graph.add(Node(node.id, node.kind, node.label, node.href, node.detail, node.depth + 1))
        graph.edges |= {e for e in sub.edges if e[0] in kept and e[1] in kept}
        graph.edges.add((sub.root, root, ", ".join(roles)))
    shown = json.loads(rows.head(SHOWN_ROWS).to_json(orient="records", date_format="iso"))
    return PredictionLineage(graph, request_id, row_id or None, len(rows), shown, versions)


def _relayer_forward(graph: Graph) -> None:
    """Give forward nodes (negative depth) columns by their longest path from the root."""
    forward = {n.id for n in graph.nodes.values() if n.depth < 0}
    for _ in range(len(forward)):
        changed = False
        for src, dst, _role in graph.edges:
            if dst in forward and src in graph.nodes:
                wanted = min(graph.nodes[src].depth, 0) - 1
                if graph.nodes[dst].depth > wanted:
                    graph.nodes[dst].depth = wanted
                    changed = True
        if not changed:
            break


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def render(graph: Graph) -> str:
    """The graph as an SVG: inputs on the left, the root, what it fed on the right."""
    depths = sorted({n.depth for n in graph.nodes.values()}, reverse=True)
    column = {d: i for i, d in enumerate(depths)}
    stacks: dict[int, list[Node]] = {}
    for node in sorted(graph.nodes.values(), key=lambda n: (n.kind, n.label)):
        stacks.setdefault(column[node.depth], []).append(node)
    where: dict[str, tuple[float, float]] = {}
    for col, nodes in stacks.items():
        for row, node in enumerate(nodes):
            where[node.id] = (PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + len(depths) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(s) for s in stacks.values()) * (NODE_H + GAP_Y) - GAP_Y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="lineage graph">'
    ]
    for src, dst, role in sorted(graph.edges):
        if src not in where or dst not in where:
            continue
        x1, y1 = where[src][0] + NODE_W, where[src][1] + NODE_H / 2
        x2, y2 = where[dst][0], where[dst][1] + NODE_H / 2
        mid = (x1 + x2) / 2
        out.append(
            f'<path class="edge" d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} '
            f'{x2:.0f},{y2:.0f}"><title>{escape(role)}</title></path>'
        )
    for node in graph.nodes.values():
        x, y = where[node.id]
        root = " root" if node.id == graph.root else ""
        out.append(
            f'<a href="{escape(node.href)}" class="node kind-{escape(node.kind)}{root}" '
            f'data-node="{escape(node.id)}"><rect x="{x}" y="{y}" width="{NODE_W}" '
            f'height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 18}" class="label">{escape(_clip(node.label, 22))}</text>'
            f'<text x="{x + 8}" y="{y + 35}" class="detail">{escape(_clip(node.detail, 27))}</text>'
            f"<title>{escape(node.label)} {escape(node.detail)}</title>"
            "</a>"
        )
    out.append("</svg>")
    return "".join(out)
