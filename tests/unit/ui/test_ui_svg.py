"""The dashboard's server-drawn SVG: the lineage graph's layout and links, metric curves."""

from __future__ import annotations

import re

from mlcycle.ui.charts import MAX_POINTS, curves
from mlcycle.ui.lineage import Graph, Node, render


def test_lineage_svg_places_inputs_left_and_links_every_node() -> None:
    graph = Graph("model:m/1")
    graph.add(Node("model:m/1", "model", "m v1", "/models/m/1", "", 0))
    graph.add(Node("b" * 64, "bundle", "bundle bbb", "/models/m/1", "", 1))
    # Reached twice: as a direct input (depth 1) and through the bundle (depth 2).
    graph.add(Node("d" * 64, "dataset", "dataset <ddd>", "/data/" + "d" * 64, "rows=3", 1))
    graph.add(Node("d" * 64, "dataset", "dataset <ddd>", "/data/" + "d" * 64, "rows=3", 2))
    graph.add(Node("e:1", "deployment", "champion", "/models/m#history", "", -1))
    graph.edges |= {("d" * 64, "b" * 64, "dataset"), ("b" * 64, "model:m/1", "registered"),
                    ("model:m/1", "e:1", "alias")}  # fmt: skip
    svg = render(graph)
    links = {
        node: href
        for href, node in re.findall(
            r'<a href="([^"]+)" class="node[^"]*" data-node="([^"]+)"', svg
        )
    }
    assert set(links) == {"model:m/1", "b" * 64, "d" * 64, "e:1"}
    assert links["d" * 64] == "/data/" + "d" * 64 and links["e:1"] == "/models/m#history"
    assert "<ddd>" not in svg and "&lt;ddd&gt;" in svg
    xs = {node: float(x) for node, x in re.findall(r'data-node="([^"]+)"><rect x="([0-9.]+)"', svg)}
    # The longest path wins: the dataset sits at depth 2, left of the bundle it fed.
    assert xs["d" * 64] < xs["b" * 64] < xs["model:m/1"] < xs["e:1"]
    assert svg.count('class="edge"') == 3


def test_curves_thin_long_histories_and_keep_the_last_point() -> None:
    points = [(float(i), float(i % 7)) for i in range(10_000)]
    svg = curves("loss", {"a": points, "b": [(0.0, 1.0)]})
    (line,) = re.findall(r'<polyline points="([^"]+)"', svg)
    assert len(line.split()) == MAX_POINTS
    assert svg.count("<circle") == 1  # one point: a dot, not a line
    assert "nan" not in curves("x", {"a": [(0.0, float("nan")), (1.0, 2.0)]})
