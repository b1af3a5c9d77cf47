"""The evaluation report: one self-contained HTML file (inline SVG, no scripts, no CDN).

It shows the gate's verdict and checks, every metric with its interval for the
candidate, the baseline and the champion, ROC and precision–recall curves, the
reliability curve, the confusion matrix, the comparison with the champion, the
slice table, the benefit score and the learning curve with its reading.
``report.json`` next to it holds the same data.

Example:
    >>> Path("report.html").write_text(render_html(report_data))
"""

from __future__ import annotations

import html
from typing import Any

COLORS = {"candidate": "#1f6feb", "baseline": "#8b949e", "champion": "#d29922"}
LOWER = {"log_loss", "brier", "rmse", "mae", "mape", "ece"}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1180px;color:#1f2328;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.muted{color:#656d76}
.badge{display:inline-block;padding:3px 10px;border-radius:12px;font-weight:600;color:#fff}
.ok{background:#1a7f37} .bad{background:#cf222e}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #eaeef2;padding:4px 10px;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left} th{background:#f6f8fa}
td,th{white-space:nowrap}
td.detail,th.detail{text-align:left;max-width:720px;white-space:normal}
.pass{color:#1a7f37} .fail{color:#cf222e}
.grid{display:flex;flex-wrap:wrap;gap:18px} figure{margin:0}
figcaption{font-weight:600;margin:4px 0}
.ci{color:#656d76;font-size:12px} .legend span{margin-right:14px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return _e(value)


def _line_chart(
    series: list[tuple[str, list[list[float]]]],
    *,
    xlabel: str,
    ylabel: str,
    diagonal: bool = False,
    size: int = 300,
    scatter: bool = False,
) -> str:
    """An SVG line chart (or scatter plot) on [0, 1] × [0, 1]."""
    pad = 38
    inner = size - pad - 10

    def xy(x: float, y: float) -> str:
        return f"{pad + x * inner:.1f},{10 + (1 - y) * inner:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img">',
        f'<rect x="{pad}" y="10" width="{inner}" height="{inner}" fill="#fff" stroke="#d0d7de"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        px = pad + tick * inner
        py = 10 + (1 - tick) * inner
        parts.append(
            f'<line x1="{px:.1f}" y1="10" x2="{px:.1f}" y2="{10 + inner}" stroke="#f0f2f4"/>'
            f'<line x1="{pad}" y1="{py:.1f}" x2="{pad + inner}" y2="{py:.1f}" stroke="#f0f2f4"/>'
            f'<text x="{px:.1f}" y="{size - 14}" font-size="10" text-anchor="middle" '
            f'fill="#656d76">{tick:g}</text>'
            f'<text x="{pad - 4}" y="{py + 3:.1f}" font-size="10" text-anchor="end" '
            f'fill="#656d76">{tick:g}</text>'
        )
    if diagonal:
        parts.append(
            f'<line x1="{pad}" y1="{10 + inner}" x2="{pad + inner}" y2="10" '
            'stroke="#afb8c1" stroke-dasharray="4 3"/>'
        )
    for role, points in series:
        if not points:
            continue
        if scatter:
            parts += [
                f'<circle cx="{pad + x * inner:.1f}" cy="{10 + (1 - y) * inner:.1f}" r="2" '
                f'fill="{COLORS.get(role, "#333")}" fill-opacity="0.6"/>'
                for x, y in points
            ]
            continue
        path = " ".join(xy(x, y) for x, y in points)
        dash = ' stroke-dasharray="6 4"' if role == "champion" else ""
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{COLORS.get(role, "#333")}" '
            f'stroke-width="2"{dash}/>'
        )
        if len(points) <= 20:  # few points (reliability bins): mark them
            parts += [
                f'<circle cx="{xy(x, y).split(",")[0]}" cy="{xy(x, y).split(",")[1]}" r="3" '
                f'fill="{COLORS.get(role, "#333")}"/>'
                for x, y in points
            ]
    parts.append(
        f'<text x="{pad + inner / 2:.0f}" y="{size - 1}" font-size="11" text-anchor="middle">'
        f"{_e(xlabel)}</text>"
        f'<text x="11" y="{10 + inner / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 11 {10 + inner / 2:.0f})">{_e(ylabel)}</text></svg>'
    )
    return "".join(parts)


def _confusion_svg(confusion: dict[str, Any], size: int = 300) -> str:
    labels = confusion["labels"]
    matrix = confusion["matrix"]
    k = len(labels)
    pad = 90
    cell = (size - pad - 10) / max(k, 1)
    top = max((max(row) for row in matrix), default=1) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img">']
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            shade = count / top
            fill = f"rgb({int(255 - 200 * shade)},{int(255 - 150 * shade)},255)"
            x, y = pad + j * cell, pad - 40 + i * cell
            colour = "#fff" if shade > 0.6 else "#1f2328"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="{fill}" stroke="#fff"/>'
                f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" font-size="12" '
                f'text-anchor="middle" fill="{colour}">{count}</text>'
            )
    for i, label in enumerate(labels[:12]):
        parts.append(
            f'<text x="{pad - 6}" y="{pad - 40 + (i + 0.5) * cell + 4:.1f}" font-size="11" '
            f'text-anchor="end">{_e(label)[:14]}</text>'
            f'<text x="{pad + (i + 0.5) * cell:.1f}" y="{pad - 46}" font-size="11" '
            f'text-anchor="middle">{_e(label)[:14]}</text>'
        )
    parts.append(
        f'<text x="{pad + (size - pad) / 2:.0f}" y="{pad - 62}" font-size="11" '
        'text-anchor="middle" fill="#656d76">predicted</text>'
        f'<text x="8" y="{pad - 50}" font-size="11" fill="#656d76">actual ↓</text></svg>'
    )
    return "".join(parts)


def _legend(roles: list[str]) -> str:
    return (
        '<div class="legend">'
        + "".join(
            f'<span><i class="sw" style="background:{COLORS.get(r, "#333")}"></i>{_e(r)}</span>'
            for r in roles
        )
        + "</div>"
    )


def render_html(data: dict[str, Any]) -> str:
    """The report as one HTML string (see :mod:`mlcycle.evaluate.report`).

    Example:
        >>> page = render_html({"evaluation": evaluation.model_dump(), "blessing": {...}})
        >>> page.startswith("<!doctype html>")
        True
    """
    ev = data["evaluation"]
    champion = data.get("champion")
    details = data.get("details", {}).get("roles", {})
    level = f"{ev.get('confidence', 0.95):.0%}"
    preference = {"candidate": 0, "baseline": 1}
    roles = sorted(ev["metrics"], key=lambda r: (preference.get(r, 2), r))
    out = _head(data, level) + _gate(data["blessing"]) + _metrics(ev, roles, champion)
    if ev.get("benefit"):
        out.append(_benefit(ev["benefit"], data.get("benefit_matrix"), level))
    figures = _figures(ev, details)
    if figures:
        out.append("<h2>Curves</h2><div class='grid'>" + "".join(figures) + "</div>")
    curve = data.get("details", {}).get("learning_curve")
    if curve:
        out.append(_learning_curve(curve))
    elif data.get("details", {}).get("learning_curve_error"):
        out.append(
            "<h2>Learning curve</h2><p class='muted'>Not drawn: "
            f"{_e(data['details']['learning_curve_error'])}</p>"
        )
    if champion and champion.get("comparison"):
        out.append(_versus_champion(champion, ev, level))
    if ev.get("slices"):
        out += _slices(ev, roles, champion)
    out.append(
        "<p class='muted'>Generated by mlcycle. Intervals are percentile bootstrap "
        "intervals; comparisons with the champion use DeLong (ROC-AUC), McNemar (accuracy) "
        "or a paired bootstrap on the same rows.</p></body></html>"
    )
    return "\n".join(out)


# --- sections: each returns the report's lines (joined by newlines) --------------------


def _head(data: dict[str, Any], level: str) -> list[str]:
    ev = data["evaluation"]
    champion = data.get("champion")
    verdict = (
        '<span class="badge ok">blessed</span>'
        if data["blessing"]["blessed"]
        else '<span class="badge bad">refused</span>'
    )
    return [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>mlcycle evaluation — {_e(data.get('project', ''))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(data.get('project', 'model'))}: holdout evaluation {verdict}</h1>",
        f"<p class='muted'>{_e(ev['task'])} · primary metric <b>{_e(ev['primary_metric'])}</b> · "
        f"{ev['rows']} holdout rows · {level} intervals from {ev.get('n_boot', 0)} bootstrap "
        "resamples (seeded)"
        + (f" · champion v{champion['version']}" if champion else " · no champion (cold start)")
        + "</p>",
    ]


def _gate(blessing: dict[str, Any]) -> list[str]:
    out = [
        "<h2>Gate</h2><table><tr><th>check</th><th>result</th><th class='detail'>detail</th></tr>"
    ]
    for check in blessing["checks"]:
        mark = (
            "<span class='pass'>✔ pass</span>"
            if check["passed"]
            else ("<span class='fail'>✘ fail</span>")
        )
        out.append(
            f"<tr><td>{_e(check['name'])}</td><td>{mark}</td>"
            f"<td class='detail'>{_e(check['detail'])}</td></tr>"
        )
    out.append("</table>")
    return out


def _with_interval(value: Any, ci: Any) -> str:
    """A metric's value, with its interval on a second, muted line when there is one."""
    shown = _num(value)
    if ci:
        shown += f"<br><span class='ci'>{_num(ci[0])} … {_num(ci[1])}</span>"
    return shown


def _metrics(ev: dict[str, Any], roles: list[str], champion: dict[str, Any] | None) -> list[str]:
    metric = ev["primary_metric"]
    out = ["<h2>Metrics</h2>" + _legend(roles + (["champion"] if champion else []))]
    out.append(
        "<table><tr><th>metric</th>"
        + "".join(f"<th>{_e(r)}</th>" for r in roles)
        + ("<th>champion</th>" if champion else "")
        + "</tr>"
    )
    names = list(ev["metrics"].get("candidate", {}))
    names.sort(key=lambda n: (n != metric, n))
    for name in names:
        arrow = " ↓" if name in LOWER else " ↑"
        row = [
            f"<td><b>{_e(name)}</b>{arrow}</td>"
            if name == metric
            else f"<td>{_e(name)}{arrow}</td>"
        ]
        for role in roles:
            value = ev["metrics"][role].get(name)
            ci = ev.get("intervals", {}).get(role, {}).get(name)
            row.append(f"<td>{_with_interval(value, ci)}</td>")
        if champion:
            row.append(f"<td>{_num((champion.get('metrics') or {}).get(name))}</td>")
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</table>")
    return out


def _benefit(b: dict[str, Any], matrix: Any, level: str) -> str:
    return (
        "<h2>Benefit</h2><p>Decision threshold <b>"
        + _num(b["threshold"], 3)
        + "</b> (the best on the validation split, applied unchanged to the holdout). "
        "Mean benefit per row: "
        + ", ".join(f"{_e(r)} <b>{_num(v, 3)}</b>" for r, v in b["per_row"].items())
        + (
            f" (candidate {level} CI {_num(b['interval'][0], 3)} … {_num(b['interval'][1], 3)})"
            if b.get("interval")
            else ""
        )
        + f". Matrix: {_e(matrix)}.</p>"
    )


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{caption}</figcaption>{svg}</figure>"


def _figures(ev: dict[str, Any], details: dict[str, Any]) -> list[str]:
    """The curves every role has (ROC, PR), then the candidate's own plots."""
    figures = []
    if any("curves" in d for d in details.values()):
        roc = [(r, d["curves"]["roc"]) for r, d in details.items() if "curves" in d]
        pr = [(r, d["curves"]["pr"]) for r, d in details.items() if "curves" in d]
        figures.append(
            _figure(
                "ROC curve",
                _line_chart(
                    roc, xlabel="false positive rate", ylabel="true positive rate", diagonal=True
                ),
            )
        )
        figures.append(
            _figure("Precision–recall curve", _line_chart(pr, xlabel="recall", ylabel="precision"))
        )
    calib = [
        (r, [[b["predicted"], b["observed"]] for b in d["calibration"]])
        for r, d in details.items()
        if d.get("calibration") and r == "candidate"
    ]
    if calib:
        ece = ev["metrics"].get("candidate", {}).get("ece")
        figures.append(
            _figure(
                "Reliability (calibration)" + (f" · ECE {_num(ece)}" if ece is not None else ""),
                _line_chart(calib, xlabel="mean predicted", ylabel="observed", diagonal=True),
            )
        )
    cand = details.get("candidate", {})
    if cand.get("confusion"):
        figures.append(_figure("Confusion matrix (candidate)", _confusion_svg(cand["confusion"])))
    if cand.get("scatter"):
        figures.append(_figure("Predicted vs actual (scaled)", _scatter(cand["scatter"])))
    return figures


def _scatter(pts: list[list[float]]) -> str:
    """Predicted against actual, both scaled by the same range so the diagonal is y = x."""
    lo = min(min(p) for p in pts)
    hi = max(max(p) for p in pts)
    span = (hi - lo) or 1.0
    scaled = [[(a - lo) / span, (b - lo) / span] for a, b in pts]
    return _line_chart(
        [("candidate", scaled)],
        xlabel="actual",
        ylabel="predicted",
        diagonal=True,
        scatter=True,
    )


def _versus_champion(champion: dict[str, Any], ev: dict[str, Any], level: str) -> str:
    c = champion["comparison"]
    return (
        f"<h2>Versus champion v{champion['version']}</h2><p>{_e(c.get('test'))} on the same "
        f"{int(c.get('rows', ev['rows']))} rows: improvement in {_e(ev['primary_metric'])} "
        f"<b>{float(c['improvement']):+.4f}</b> ({level} CI {float(c['ci_low']):+.4f} … "
        f"{float(c['ci_high']):+.4f}"
        + (f", p = {float(c['p_value']):.3g}" if c.get("p_value") is not None else "")
        + ").</p>"
    )


def _slices(ev: dict[str, Any], roles: list[str], champion: dict[str, Any] | None) -> list[str]:
    metric = ev["primary_metric"]
    by_key = {(s["column"], s["value"]): s for s in (champion or {}).get("slices") or []}
    out = [
        f"<h2>Slices ({_e(metric)})</h2><table><tr><th>slice</th><th>rows</th><th>judged</th>"
        + "".join(f"<th>{_e(r)}</th>" for r in roles)
        + ("<th>Δ vs champion</th>" if champion else "")
        + "</tr>"
    ]
    for s in ev["slices"]:
        cells = [
            f"<td>{_e(s['column'])} = {_e(s['value'])}</td><td>{s['rows']}</td>"
            f"<td>{'yes' if s['judged'] else 'no'}</td>"
        ]
        for role in roles:
            value = s["metrics"].get(role, {}).get(metric)
            ci = s.get("intervals", {}).get(role, {}).get(metric)
            cells.append(f"<td>{_with_interval(value, ci)}</td>")
        if champion:
            cells.append(_versus_champion_cell(by_key.get((s["column"], s["value"]))))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return out


def _versus_champion_cell(cmp_: dict[str, Any] | None) -> str:
    """A slice's change against the champion, red when the whole interval is a loss."""
    if not (cmp_ and cmp_.get("judged")):
        return "<td>–</td>"
    bad = cmp_["ci_high"] < 0
    return (
        f"<td class='{'fail' if bad else ''}'>{cmp_['improvement']:+.4f}"
        f"<br><span class='ci'>{cmp_['ci_low']:+.4f} … {cmp_['ci_high']:+.4f}"
        "</span></td>"
    )


CURVE_COLORS = {"train": "#1a7f37", "validation": "#1f6feb"}


def _learning_curve(curve: dict[str, Any]) -> str:
    """Train and validation score by training rows (log scale), and the reading's line."""
    metric = curve["metric"]
    reading = curve["reading"]
    series = [
        (name, [(r, v) for r, v in zip(curve["rows"], values, strict=True) if v is not None])
        for name, values in (("train", curve["train"]), ("validation", curve["valid"]))
    ]
    legend = "".join(
        f'<span><i class="sw" style="background:{CURVE_COLORS[n]}"></i>{n}</span>'
        for n, _ in series
    )
    rows = "".join(
        f"<tr><td>{r:,}</td><td>{_num(t)}</td><td>{_num(v)}</td>"
        f"<td>{'refit' if refit else 'the trained model'}</td></tr>"
        for r, t, v, refit in zip(
            curve["rows"], curve["train"], curve["valid"], curve["refit"], strict=True
        )
    )
    figures = reading.get("figures") or {}
    shown = ", ".join(f"{_e(k)} {_num(v, 3)}" for k, v in figures.items())
    return (
        f"<h2>Learning curve ({_e(metric)})</h2>"
        f"<p><b>{_e(reading['text'])}</b></p>"
        "<div class='grid'><figure><figcaption>Score by training rows</figcaption>"
        + _curve_svg(series, baseline=curve.get("baseline"), ylabel=metric)
        + f"<div class='legend'>{legend}</div></figure>"
        "<div><table><tr><th>training rows</th><th>train</th><th>validation</th><th>fit</th>"
        f"</tr>{rows}</table>"
        f"<p class='muted'>Scored on {int(curve['valid_rows']):,} validation rows; "
        f"subsets of the {int(curve['train_rows']):,} training rows: {_e(curve['order'])}. "
        f"Rule: {_e(reading['rule'])}."
        + (f" Figures: {shown}." if shown else "")
        + "</p></div></div>"
    )


def _curve_svg(
    series: list[tuple[str, list[tuple[int, float]]]],
    *,
    baseline: float | None,
    ylabel: str,
    width: int = 360,
    height: int = 260,
) -> str:
    """Lines over a log-scaled row axis; the y range fits the scores (and the baseline)."""
    import math

    pad_l, pad_b, top, right = 46, 34, 10, 12
    w, h = width - pad_l - right, height - pad_b - top
    xs = [r for _, pts in series for r, _ in pts]
    ys = [v for _, pts in series for _, v in pts]
    if not xs:
        return ""
    # The scores set the y range (a far-off baseline would flatten them); points are
    # kept off the frame so their markers and row labels stay whole.
    lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))
    edge = max((lx1 - lx0) * 0.08, 0.1)
    lx0, lx1 = lx0 - edge, lx1 + edge
    y0, y1 = min(ys), max(ys)
    margin = max((y1 - y0) * 0.08, 0.005)
    y0, y1 = y0 - margin, y1 + margin

    def px(r: float) -> float:
        return pad_l + (math.log10(r) - lx0) / (lx1 - lx0) * w

    def py(v: float) -> float:
        return top + (1 - (v - y0) / (y1 - y0)) * h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">',
        f'<rect x="{pad_l}" y="{top}" width="{w}" height="{h}" fill="#fff" stroke="#d0d7de"/>',
    ]
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        parts.append(
            f'<line x1="{pad_l}" y1="{py(v):.1f}" x2="{pad_l + w}" y2="{py(v):.1f}" '
            f'stroke="#f0f2f4"/><text x="{pad_l - 4}" y="{py(v) + 3:.1f}" font-size="10" '
            f'text-anchor="end" fill="#656d76">{v:.3g}</text>'
        )
    for r in sorted(set(xs)):
        parts.append(
            f'<text x="{px(r):.1f}" y="{top + h + 13}" font-size="10" text-anchor="middle" '
            f'fill="#656d76">{r:,}</text>'
        )
    if baseline is not None and y0 <= baseline <= y1:
        parts.append(
            f'<line x1="{pad_l}" y1="{py(baseline):.1f}" x2="{pad_l + w}" y2="{py(baseline):.1f}" '
            'stroke="#8b949e" stroke-dasharray="4 3"/>'
            f'<text x="{pad_l + w - 4}" y="{py(baseline) - 4:.1f}" font-size="10" '
            'text-anchor="end" fill="#656d76">baseline</text>'
        )
    for name, pts in series:
        colour = CURVE_COLORS.get(name, "#333")
        path = " ".join(f"{px(r):.1f},{py(v):.1f}" for r, v in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{px(r):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>' for r, v in pts
        ]
    parts.append(
        f'<text x="{pad_l + w / 2:.0f}" y="{height - 4}" font-size="11" text-anchor="middle">'
        "training rows (log scale)</text>"
        f'<text x="11" y="{top + h / 2:.0f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 11 {top + h / 2:.0f})">{_e(ylabel)}</text></svg>'
    )
    return "".join(parts)
