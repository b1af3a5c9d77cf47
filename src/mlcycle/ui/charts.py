"""Metric curves over steps as inline SVG (numbers on both axes; no script, no CDN).

The monitor's charts (:mod:`mlcycle.monitor.svg`) put windows on the x axis;
a tracked metric is logged at arbitrary steps, so its curves need a numeric
x axis. Long histories are thinned to at most :data:`MAX_POINTS` points per
line, evenly by index, keeping the last one.

Example:
    >>> svg = curves("valid_loss", {"run a": [(0, 1.0), (1, 0.5)]})
    >>> svg.startswith("<svg") and "run a" in svg
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from mlcycle.monitor.svg import PALETTE, compact

MAX_POINTS = 400


def _thin(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    finite = [(float(x), float(y)) for x, y in points if math.isfinite(y)]
    if len(finite) <= MAX_POINTS:
        return finite
    step = len(finite) / MAX_POINTS
    return [finite[int(i * step)] for i in range(MAX_POINTS - 1)] + [finite[-1]]


def curves(
    title: str,
    series: dict[str, Sequence[tuple[float, float]]],
    *,
    width: int = 520,
    height: int = 220,
) -> str:
    """One line per series of (step, value) points, with a legend and labelled axes."""
    lines = {name: _thin(points) for name, points in series.items()}
    xs = [x for pts in lines.values() for x, _ in pts] or [0.0, 1.0]
    ys = [y for pts in lines.values() for _, y in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 - x0 < 1e-12:
        x0, x1 = x0 - 1, x1 + 1
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 52, 12, 26 + 14 * ((len(lines) + 2) // 3), 28
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + pw * (x - x0) / (x1 - x0)

    def py(y: float) -> float:
        return top + ph * (1 - (y - y0) / (y1 - y0))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="15" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for i in range(5):
        value = y0 + (y1 - y0) * i / 4
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{py(value):.1f}" y2="{py(value):.1f}" '
            f'stroke="#eee"/><text x="{left - 4}" y="{py(value) + 3:.1f}" font-size="10" '
            f'text-anchor="end">{compact(value)}</text>'
        )
    for i in range(5):
        value = x0 + (x1 - x0) * i / 4
        out.append(
            f'<text x="{px(value):.1f}" y="{height - 10}" font-size="10" '
            f'text-anchor="middle">{compact(value)}</text>'
        )
    for i, (name, pts) in enumerate(lines.items()):
        color = PALETTE[i % len(PALETTE)]
        lx, ly = left + (i % 3) * (pw // 3), 30 + 14 * (i // 3)
        out.append(
            f'<rect x="{lx}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{ly - 3}" font-size="10">{escape(name[:28])}</text>'
        )
        if len(pts) == 1:
            x, y = pts[0]
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        elif pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"/>'
            )
    out.append("</svg>")
    return "".join(out)
