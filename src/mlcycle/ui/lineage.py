"""The lineage graph of a model version or an artifact, laid out and drawn as inline SVG.

Backwards from the root: the store's lineage edges (bundle → evaluation,
model, splits → dataset version), then the bundle's lineage record (raw
partitions, spec hash, git commit, pipeline run). Forwards: the alias moves
that deployed a model version, or the artifacts and model versions built on a
dataset version. Every node links to its page.

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

from mlcycle.registry.models import ModelRef, Registry
from mlcycle.store import Store, queries

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
