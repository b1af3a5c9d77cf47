"""Tiny inline-SVG charts for the monitoring report (no JavaScript, no CDN).

Example:
    >>> svg = line_chart(["07", "08"], {"realized": [0.8, 0.7]}, title="ROC AUC")
    >>> svg.startswith("<svg")
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def compact(v: float) -> str:
    """A short axis label: ``1.35k``, ``2.4M``, ``0.013``, ``-12`` (no exponent notation).

    Example:
        >>> [compact(v) for v in (1350.0, -12.0, 0.0125, 2_400_000.0)]
        ['1.35k', '-12', '0.0125', '2.4M']
    """
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.3g}{suffix}"
    return f"{v:.3g}"


@dataclass
class _Frame:
    """The plot area of a line chart and its mapping from (window, value) to pixels."""

    width: int
    height: int
    n: int
    y0: float
    y1: float
    left: int = 48
    right: int = 12
    top: int = 40
    bottom: int = 34

    @classmethod
    def fitting(cls, values: list[float], n: int, width: int, height: int) -> _Frame:
        """A frame whose value axis spans ``values`` with 8% padding (0..1 when empty)."""
        if not values:
            values = [0.0, 1.0]
        y0, y1 = min(values), max(values)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5, y1 + 0.5
        pad = (y1 - y0) * 0.08
        return cls(width, height, max(n, 1), y0 - pad, y1 + pad)

    @property
    def pw(self) -> int:
        return self.width - self.left - self.right

    @property
    def ph(self) -> int:
        return self.height - self.top - self.bottom

    def x(self, i: int) -> float:
        return self.left + (self.pw * (i + 0.5) / self.n)

    def y(self, v: float) -> float:
        return self.top + self.ph * (1 - (v - self.y0) / (self.y1 - self.y0))


def line_chart(
    x_labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str = "",
    bands: dict[str, tuple[Sequence[float | None], Sequence[float | None]]] | None = None,
    hlines: dict[str, float] | None = None,
    marks: Sequence[int] = (),
    width: int = 560,
    height: int = 220,
) -> str:
    """Lines over windows; ``bands`` shade (low, high) per series; ``marks`` flag windows.

    The legend has its own row under the title, so it never hides a line near
    the top; later series are dashed and drawn thinner, so a series lying on
    another (two rates both at 1.0) still shows.

    Example:
        >>> line_chart(["07", "08"], {"realized": [0.8, 0.7]}, hlines={"holdout": 0.78})[:4]
        '<svg'
    """
    bands, hlines = bands or {}, hlines or {}
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    for lo, hi in bands.values():
        values += [v for v in (*lo, *hi) if v is not None and math.isfinite(v)]
    values += list(hlines.values())
    f = _Frame.fitting(values, len(x_labels), width, height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{f.left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{f.left}" y="{f.top}" width="{f.pw}" height="{f.ph}" fill="#fafafa" '
        'stroke="#ccc"/>',
        *_axes(f, x_labels),
        *(
            f'<rect x="{f.x(i) - f.pw / f.n / 2:.1f}" y="{f.top}" width="{f.pw / f.n:.1f}" '
            f'height="{f.ph}" fill="#d62728" opacity="0.08"/>'
            for i in marks
        ),
        *_bands(f, bands, list(series)),
        *(
            f'<line x1="{f.left}" x2="{f.left + f.pw}" y1="{f.y(v):.1f}" y2="{f.y(v):.1f}" '
            'stroke="#555" stroke-dasharray="4 3"/>'
            f'<text x="{f.left + f.pw - 2}" y="{f.y(v) - 3:.1f}" font-size="10" '
            f'text-anchor="end">{escape(name)} {_fmt(v)}</text>'
            for name, v in hlines.items()
        ),
        *_lines(f, series),
        "</svg>",
    ]
    return "".join(out)


def _axes(f: _Frame, x_labels: Sequence[str]) -> list[str]:
    """Five horizontal grid lines with their values, and at most 12 window labels."""
    out = []
    for k in range(5):
        v = f.y0 + (f.y1 - f.y0) * k / 4
        out.append(
            f'<line x1="{f.left}" x2="{f.left + f.pw}" y1="{f.y(v):.1f}" y2="{f.y(v):.1f}" '
            f'stroke="#eee"/><text x="{f.left - 4}" y="{f.y(v) + 4:.1f}" font-size="10" '
            f'text-anchor="end">{_fmt(v)}</text>'
        )
    step = max(1, math.ceil(f.n / 12))
    for i, label in enumerate(x_labels):
        if i % step == 0:
            out.append(
                f'<text x="{f.x(i):.1f}" y="{f.height - 12}" font-size="10" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    return out


def _bands(
    f: _Frame,
    bands: dict[str, tuple[Sequence[float | None], Sequence[float | None]]],
    names: list[str],
) -> list[str]:
    """Each (low, high) band as a shaded polygon in its series' colour."""
    out = []
    for j, (name, (lo, hi)) in enumerate(bands.items()):
        pts = [
            (i, a, b)
            for i, (a, b) in enumerate(zip(lo, hi, strict=True))
            if a is not None and b is not None
        ]
        if pts:
            color = PALETTE[names.index(name) % len(PALETTE)] if name in names else PALETTE[j]
            poly = [f"{f.x(i):.1f},{f.y(b):.1f}" for i, _, b in pts] + [
                f"{f.x(i):.1f},{f.y(a):.1f}" for i, a, _ in reversed(pts)
            ]
            out.append(f'<polygon points="{" ".join(poly)}" fill="{color}" opacity="0.15"/>')
    return out


def _lines(f: _Frame, series: dict[str, Sequence[float | None]]) -> list[str]:
    """Each series as a line with dots, and its entry in the legend row."""
    out = []
    legend_x: float = f.left
    for j, (name, vals) in enumerate(series.items()):
        color = PALETTE[j % len(PALETTE)]
        dash = "" if j == 0 else ' stroke-dasharray="6 3"'
        line = [(i, v) for i, v in enumerate(vals) if v is not None and math.isfinite(v)]
        if len(line) > 1:
            path = " ".join(f"{f.x(i):.1f},{f.y(v):.1f}" for i, v in line)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" '
                f'stroke-width="{max(2.5 - 0.75 * j, 1):g}"{dash}/>'
            )
        for i, v in line:
            out.append(
                f'<circle cx="{f.x(i):.1f}" cy="{f.y(v):.1f}" r="{max(4 - j, 2)}" fill="{color}"/>'
            )
        out.append(
            f'<line x1="{legend_x}" x2="{legend_x + 16}" y1="{f.top - 10}" y2="{f.top - 10}" '
            f'stroke="{color}" stroke-width="3"{dash}/>'
            f'<text x="{legend_x + 20}" y="{f.top - 6}" font-size="11">{escape(name)}</text>'
        )
        legend_x += 32 + 6.5 * len(name)
    return out


def bar_pairs(
    labels: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    title: str = "",
    width: int = 420,
    height: int = 200,
) -> str:
    """Side-by-side bars of two distributions (shares per bin or category)."""
    left, right, top, bottom = 40, 10, 26, 40
    pw, ph = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    top_v = max([*reference, *current, 1e-9])
    bw = pw / n
    # As many axis labels as fit side by side (about 5.5 px per character at 9 px).
    widest = max((len(label[:10]) for label in labels), default=1)
    step = max(1, math.ceil(n * (widest * 5.5 + 6) / pw))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">{_fmt(top_v)}</text>',
        f'<text x="{left - 4}" y="{top + ph}" font-size="10" text-anchor="end">0</text>',
    ]
    for i, label in enumerate(labels):
        for k, (vals, color) in enumerate(((reference, PALETTE[0]), (current, PALETTE[1]))):
            h = ph * vals[i] / top_v
            out.append(
                f'<rect x="{left + i * bw + bw * (0.1 + 0.4 * k):.1f}" y="{top + ph - h:.1f}" '
                f'width="{bw * 0.4:.1f}" height="{h:.1f}" fill="{color}"/>'
            )
        if i % step == 0:
            out.append(
                f'<text x="{left + (i + 0.5) * bw:.1f}" y="{top + ph + 12}" font-size="9" '
                f'text-anchor="middle">{escape(label[:10])}</text>'
            )
    out.append(
        f'<rect x="{left + 6}" y="{height - 14}" width="10" height="10" fill="{PALETTE[0]}"/>'
        f'<text x="{left + 20}" y="{height - 5}" font-size="11">reference</text>'
        f'<rect x="{left + 90}" y="{height - 14}" width="10" height="10" fill="{PALETTE[1]}"/>'
        f'<text x="{left + 104}" y="{height - 5}" font-size="11">current</text>'
    )
    out.append("</svg>")
    return "".join(out)


def sparkline(values: Sequence[float | None], *, width: int = 150, height: int = 36) -> str:
    """A bare line of a metric over windows (no axes), for table cells."""
    pts = [(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(pts) < 2:
        return ""
    lo = min(v for _, v in pts)
    hi = max(v for _, v in pts)
    span = hi - lo if hi > lo else 1.0
    n = max(len(values) - 1, 1)
    coords = " ".join(
        f"{2 + (width - 4) * i / n:.1f},{height - 3 - (height - 6) * (v - lo) / span:.1f}"
        for i, v in pts
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f'<polyline points="{coords}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/>'
        f"<title>{escape(f'{lo:.3g} to {hi:.3g}')}</title></svg>"
    )
