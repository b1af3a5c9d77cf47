"""The backtest as one self-contained HTML page: a table of policies and one chart.

The chart has the per-window primary metric of every policy (inline SVG from
:mod:`mlcycle.monitor.svg`, no JavaScript, no CDN); under each window, one letter
per policy event: R retrain, P promotion, B rollback (the policies' colours).

Example:
    >>> Path("backtest.html").write_text(render_html(result.to_dict()), encoding="utf-8")
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from mlcycle.pipeline.stage_ops import PALETTE, line_chart

__all__ = ["render_html"]

_MARKS = {"retrain": "R", "promote": "P", "rollback": "B"}


def render_html(doc: dict[str, Any]) -> str:
    """The page for ``BacktestResult.to_dict()``.

    Example:
        >>> render_html(result.to_dict()).startswith("<!doctype html>")
        True
    """
    policies = doc["policies"]
    labels = [w["window"] for w in policies[0]["windows"]] if policies else []
    series: dict[str, Sequence[float | None]] = {
        p["name"]: [w["metric"] for w in p["windows"]] for p in policies
    }
    chart = line_chart(
        labels,
        series,
        title=f"{doc['metric']} per {doc['window']}, every policy",
        width=max(560, 60 * len(labels) + 80),
        height=300,
    )
    rows = "".join(
        "<tr>"
        f"<td style='color:{PALETTE[i % len(PALETTE)]}'><b>{escape(p['name'])}</b>"
        f"{' (default)' if p['name'] == doc['default'] else ''}</td>"
        f"<td>{escape(p.get('description', ''))}</td>"
        f"<td class=n>{p['score']:,.1f}</td><td class=n>{p['retrains']}</td>"
        f"<td class=n>{p['promotions']}</td><td class=n>{p['rollbacks']}</td>"
        f"<td class=n>{_num(p.get('mean_metric'))}</td></tr>"
        for i, p in enumerate(policies)
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>mlcycle loop backtest — {escape(doc['project'])}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;"
        "padding:4px 8px;vertical-align:top}td.n{text-align:right;font-variant-numeric:"
        "tabular-nums}.ev{font-family:monospace}</style></head><body>"
        f"<h1>Loop backtest — {escape(doc['project'])}</h1>"
        f"<p>{len(labels)} {escape(doc['window'])} windows; labels arrive one window late. "
        f"Score = {escape(doc['score_units'])} (retrain_cost {doc['retrain_cost']:g}); "
        "higher is better.</p>"
        "<table><tr><th>policy</th><th>what it does</th><th>score</th><th>retrains</th>"
        f"<th>promotions</th><th>rollbacks</th><th>mean {escape(doc['metric'])}</th></tr>"
        f"{rows}</table>{chart}{_events(policies, labels)}"
        f"<p>{doc['seconds']:.0f} s; pipeline runs {doc['pipeline'].get('runs', 0)}, steps "
        f"reused from cache {doc['pipeline'].get('steps_cached', 0)}, "
        f"run {doc['pipeline'].get('steps_ran', 0)}.</p></body></html>"
    )


def _events(policies: list[dict[str, Any]], labels: list[str]) -> str:
    """A table under the chart: per window, each policy's events as letters, reasons on hover."""
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    body = []
    for i, policy in enumerate(policies):
        colour = PALETTE[i % len(PALETTE)]
        cells = []
        for w in policy["windows"]:
            marks = [
                f"<span title='{escape(_why(e))}'>{_MARKS[e['kind']]}{e.get('version', '')}</span>"
                for e in w["events"]
                if e["kind"] in _MARKS
            ]
            cells.append(f"<td class=ev>{' '.join(marks)}</td>")
        body.append(f"<tr><td style='color:{colour}'><b>{escape(policy['name'])}</b></td>")
        body.append("".join(cells) + "</tr>")
    return (
        "<h2>Events</h2><p>R = retrain (vN trained), P = promotion (vN becomes champion), "
        "B = rollback (vN rolled back). Hover for the reason.</p>"
        f"<table><tr><th>policy</th>{head}</tr>{''.join(body)}</table>"
    )


def _why(event: dict[str, Any]) -> str:
    reason = event.get("reason")
    if reason:
        return str(reason)
    if event["kind"] == "retrain":
        return "blessed by the gate" if event.get("blessed") else "refused by the gate"
    return event["kind"]


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
