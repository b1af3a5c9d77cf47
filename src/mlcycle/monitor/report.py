"""``mlcycle monitor report``: one self-contained HTML file (inline CSS and SVG, no CDN).

Sections: the drift table of one window (default: the latest with enough
rows) with each feature's statistic over time, reference-vs-current
distributions of its drifted features, performance over time (realized with
its 95% band, the label-free estimate, the holdout value), drift share and
anomaly rates over time, the window's rule anomalies, the window's profile
(nulls, range against the training range, values training never saw; seasonal
features marked), and every alert.

Example:
    >>> write_report(monitor, Path("monitor.html"))
    PosixPath('monitor.html')
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import Profile
from mlcycle.monitor.alerts import list_alerts
from mlcycle.monitor.profiled import profile_figures
from mlcycle.monitor.svg import bar_pairs, compact, line_chart, sparkline

if TYPE_CHECKING:
    from mlcycle.monitor.engine import Monitor

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
body{max-width:1200px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666;font-size:13px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f3f3f3}
.bad{color:#b00020;font-weight:bold}.ok{color:#2a7a2a}.grid{display:flex;flex-wrap:wrap;gap:12px}
.cards{display:flex;gap:12px;margin:12px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px}
svg{max-width:100%;height:auto}.cards{flex-wrap:wrap}
"""


def _f(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isinf(v):
            return "inf"
        return f"{v:.{digits}g}"
    return escape(str(v))


def write_report(monitor: Monitor, path: Path, window: str | None = None) -> Path:
    """Write the HTML report of ``monitor``'s model; return the path."""
    html = render(monitor, window)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def render(monitor: Monitor, window: str | None = None) -> str:
    """The report as an HTML string."""
    ref = monitor.reference
    meta = ref.meta
    wins = monitor.windows()
    keys = [w.key for w in wins]
    usable = [w for w in wins if "drift_report" in w.metrics]
    chosen = next((w for w in wins if w.key == window), None) if window else None
    if chosen is None and usable:
        chosen = usable[-1]
    alerts = list_alerts(monitor.store, monitor.model)
    primary = monitor.primary or "roc_auc"
    kind = (chosen.metrics if chosen else {}).get("window_kind", monitor.settings.window)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Monitoring report: {escape(meta.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>Monitoring report: {escape(meta.name)}"
        f"{'' if ref.version is None else f' v{ref.version}'}</h1>",
        f"<div class='sub'>{len(wins)} window(s) of "
        f"{escape(str(kind))}; reference: "
        + (
            f"{len(ref.frame)} training rows"
            if ref.label == "bundle"
            else f"{escape(ref.label)} ({len(ref.frame)} rows)"
        )
        + f"; decision: {escape(monitor.settings.drift_test)}; "
        f"generated {datetime.now(UTC).isoformat(timespec='seconds')}</div>",
    ]
    latest = chosen.metrics if chosen else {}
    # Seasonal features drift by the calendar: shown in the table, not counted here.
    counted = [f for f in latest.get("drift_report", []) if not f.get("seasonal")]
    parts.append("<div class='cards'>")
    for label, value in (
        ("window", chosen.key if chosen else "none"),
        ("rows", latest.get("rows")),
        (
            "drifted features",
            f"{sum(1 for f in counted if f['drift'])} / {len(counted)}",
        ),
        ("anomaly rate", _f(latest.get("anomaly_rate"), 3)),
        ("alerts", len(alerts)),
    ):
        parts.append(f"<div class='card'>{escape(label)}<b>{escape(str(value))}</b></div>")
    parts.append("</div>")
    parts += _drift_section(monitor, chosen, wins)
    parts += _performance_section(wins, keys, primary, meta.metrics.get(primary))
    parts += _anomaly_section(wins, keys, latest)
    parts += _profile_section(monitor, chosen)
    parts += _alerts_section(alerts)
    parts.append("</body></html>")
    return "".join(parts)


def _drift_section(monitor: Monitor, chosen: Any, wins: list[Any]) -> list[str]:
    out = ["<h2>Data drift</h2>"]
    if chosen is None:
        return [*out, "<p>No window has enough rows yet.</p>"]
    out.append(f"<p>Window <b>{escape(chosen.key)}</b>, {chosen.metrics.get('rows')} rows.</p>")
    out.append(
        "<table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th>"
        "<th>threshold</th><th>p-value</th><th>drift</th><th>statistic over windows</th></tr>"
    )
    for f in chosen.metrics["drift_report"]:
        series = [w.metrics.get(f"drift_stat:{f['feature']}") for w in wins]
        spark = sparkline(series)
        flag = "<span class='bad'>yes</span>" if f["drift"] else "<span class='ok'>no</span>"
        if f.get("seasonal"):
            flag = ("yes" if f["drift"] else "no") + " (seasonal — expected, not alerted)"
        out.append(
            f"<tr><td>{escape(f['feature'])}</td><td>{escape(f['kind'])}</td>"
            f"<td>{escape(f['test'])}</td><td>{_f(f['statistic'])}</td>"
            f"<td>{_f(f['threshold'])}</td><td>{_f(f.get('p_value'), 3)}</td><td>{flag}</td>"
            f"<td>{spark}</td></tr>"
        )
    out.append("</table>")
    m = chosen.metrics
    extra = [
        ("prediction drift", m.get("prediction_drift_stat"), m.get("prediction_drift")),
        ("target drift", m.get("target_drift_stat"), m.get("target_drift")),
        ("domain classifier AUC", m.get("domain_auc"), None),
        ("PCA reconstruction error ratio", m.get("pca_error_ratio"), None),
    ]
    out.append("<table><tr><th>signal</th><th>value</th><th>flag</th></tr>")
    for name, value, flag in extra:
        shown = "" if flag is None else ("<span class='bad'>drift</span>" if flag else "no")
        out.append(f"<tr><td>{name}</td><td>{_f(value)}</td><td>{shown}</td></tr>")
    out.append("</table>")
    drifted = [f["feature"] for f in m["drift_report"] if f["drift"] and not f.get("seasonal")]
    if drifted:
        out.append("<h2>Distributions of drifted features</h2><div class='grid'>")
        current = monitor.window_rows(chosen.key)
        for name in drifted[:12]:
            if name in current.columns:
                out.append(_distribution(name, monitor.reference.frame[name], current[name]))
        out.append("</div>")
    return out


def _distribution(name: str, ref: pd.Series, cur: pd.Series) -> str:
    numeric = pd.api.types.is_numeric_dtype(ref) and not pd.api.types.is_bool_dtype(ref)
    if numeric and ref.nunique() > 12:
        r = pd.to_numeric(ref, errors="coerce").dropna().to_numpy(dtype=np.float64)
        c = pd.to_numeric(cur, errors="coerce").dropna().to_numpy(dtype=np.float64)
        both = np.concatenate([r, c])
        lo, hi = np.quantile(both, [0.005, 0.995]) if both.size else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, 21)
        rh = np.histogram(np.clip(r, lo, hi), edges)[0]
        ch = np.histogram(np.clip(c, lo, hi), edges)[0]
        labels = [compact(float(e)) for e in edges[:-1]]
        rs, cs = rh / max(rh.sum(), 1), ch / max(ch.sum(), 1)
    else:
        rv = ref.astype(str).value_counts(normalize=True)
        cv = cur.astype(str).value_counts(normalize=True)
        cats = list((rv.add(cv, fill_value=0)).sort_values(ascending=False).index[:15])
        if numeric:  # a few distinct numbers read best in their own order
            cats = sorted(cats, key=lambda k: float(k))
        labels = cats
        rs = np.array([rv.get(k, 0.0) for k in cats])
        cs = np.array([cv.get(k, 0.0) for k in cats])
    return bar_pairs(labels, list(rs), list(cs), title=name)


def _performance_section(
    wins: list[Any], keys: list[str], primary: str, holdout: float | None
) -> list[str]:
    out = ["<h2>Performance over time</h2>"]
    realized = [w.metrics.get(f"realized:{primary}") for w in wins]
    estimated = [w.metrics.get(f"estimated:{primary}") for w in wins]
    cis = [w.metrics.get(f"realized:{primary}_ci") or [None, None] for w in wins]
    cumulative = [w.metrics.get(f"cumulative:{primary}") for w in wins]
    if not any(v is not None for v in realized + estimated):
        return [*out, "<p>No labels and no label-free estimate yet.</p>"]
    marks = [i for i, w in enumerate(wins) if w.metrics.get("concept_drift")]
    out.append(
        line_chart(
            keys,
            {"realized": realized, "estimated (CBPE)": estimated, "cumulative": cumulative},
            title=f"{primary}: realized (95% band), estimated, cumulative",
            bands={"realized": ([c[0] for c in cis], [c[1] for c in cis])},
            hlines={"holdout": holdout} if holdout is not None else None,
            marks=marks,
            width=900,
            height=260,
        )
    )
    out.append(
        "<table><tr><th>window</th><th>labels</th><th>realized</th><th>95% CI</th>"
        "<th>estimated</th><th>estimate error</th><th>sliding</th><th>cumulative</th>"
        "<th>concept drift</th></tr>"
    )
    for w in wins:
        m = w.metrics
        ci = m.get(f"realized:{primary}_ci")
        out.append(
            f"<tr><td>{escape(w.key)}</td><td>{m.get('labels', 0)}</td>"
            f"<td>{_f(m.get(f'realized:{primary}'))}</td>"
            f"<td>{'' if not ci else f'{ci[0]:.3f}–{ci[1]:.3f}'}</td>"
            f"<td>{_f(m.get(f'estimated:{primary}'))}</td>"
            f"<td>{_f(m.get(f'estimate_error:{primary}'), 3)}</td>"
            f"<td>{_f(m.get(f'sliding:{primary}'))}</td>"
            f"<td>{_f(m.get(f'cumulative:{primary}'))}</td>"
            f"<td>{'<span class=bad>yes</span>' if m.get('concept_drift') else ''}</td></tr>"
        )
    out.append("</table>")
    return out


def _anomaly_section(wins: list[Any], keys: list[str], latest: dict[str, Any]) -> list[str]:
    out = ["<h2>Drift and anomalies over time</h2><div class='grid'>"]
    out.append(
        line_chart(
            keys,
            {"drift share": [w.metrics.get("drift_share") for w in wins]},
            title="share of drifted features",
        )
    )
    out.append(
        line_chart(
            keys,
            {
                "outlier rate": [w.metrics.get("anomaly_rate") for w in wins],
                "rule breaks": [w.metrics.get("rule_anomaly_rate") for w in wins],
                "out of training range": [w.metrics.get("out_of_range_share") for w in wins],
                "unseen in training": [w.metrics.get("unseen_share") for w in wins],
            },
            title="anomaly rates",
            bands={
                "outlier rate": (
                    [(w.metrics.get("band:anomaly_rate") or [None, None])[0] for w in wins],
                    [(w.metrics.get("band:anomaly_rate") or [None, None])[1] for w in wins],
                )
            },
        )
    )
    out.append("</div>")
    rules = dict(latest.get("rule_anomalies") or {})
    # "rows" counts rows breaking any rule; it is a total, not a rule of its own.
    breaking = rules.pop("rows", None)
    if rules:
        out.append(
            f"<p>{breaking} of {latest.get('rows')} rows of the latest window break a rule "
            "of the contract:</p>"
            "<table><tr><th>rule broken (latest window)</th><th>rows</th></tr>"
        )
        for k, v in sorted(rules.items()):
            out.append(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>")
        out.append("</table>")
    flagged = [
        (w.key, k.removeprefix("z:"), v)
        for w in wins
        for k, v in w.metrics.items()
        if k.startswith("z:") and isinstance(v, float) and abs(v) > 3.5
    ]
    if flagged:
        out.append("<p>Metric values far from their history (robust |z| &gt; 3.5):</p><table>")
        out.append("<tr><th>window</th><th>metric</th><th>z</th></tr>")
        for key, name, v in flagged:
            out.append(f"<tr><td>{escape(key)}</td><td>{escape(name)}</td><td>{v:.1f}</td></tr>")
        out.append("</table>")
    return out


def _profile_section(monitor: Monitor, chosen: Any) -> list[str]:
    """The chosen window's stored profile against what training saw, one row per feature."""
    out = ["<h2>Window profile</h2>"]
    stored = chosen.metrics.get("profile") if chosen is not None else None
    if not stored:
        return [*out, "<p>No window profile stored for this window.</p>"]
    figures = profile_figures(
        Profile.model_validate(stored),
        monitor.known,
        chosen.metrics.get("value_checks") or {},
        monitor.seasonal_features,
    )
    out.append(
        f"<p>Window <b>{escape(chosen.key)}</b>; training ranges and categories from the "
        "bundle's profile (every training row). <code>mlcycle monitor profile --by month</code> "
        "merges window profiles.</p>"
        "<table><tr><th>feature</th><th>nulls</th><th>range</th><th>training range</th>"
        "<th>rows outside training</th><th>new values (most frequent)</th></tr>"
    )
    for f in figures:
        name = escape(f["feature"]) + (" (seasonal)" if f["seasonal"] else "")
        nulls = f"{f['nulls']} ({f['null_share']:.1%})"
        if "train_min" in f:
            cells = (
                f"{_f(f['min'])} to {_f(f['max'])}",
                f"{_f(f['train_min'])} to {_f(f['train_max'])}",
                str(f["out_of_range_rows"]),
                "",
            )
        elif "unseen_rows" in f:
            cells = ("", "", str(f["unseen_rows"]), escape(", ".join(f["new_values"][:8])))
        else:
            cells = ("", "", "", "")
        out.append(f"<tr><td>{name}</td><td>{nulls}</td>" + "".join(f"<td>{c}</td>" for c in cells))
        out.append("</tr>")
    out.append("</table>")
    return out


def _alerts_section(alerts: list[dict[str, Any]]) -> list[str]:
    out = [f"<h2>Alerts ({len(alerts)})</h2>"]
    if not alerts:
        return [*out, "<p>None.</p>"]
    out.append(
        "<table><tr><th>window</th><th>model version</th><th>rule</th><th>value</th>"
        "<th>bound</th><th>severity</th><th>delivery</th></tr>"
    )
    for a in alerts:
        state = "pending: " + ", ".join(a["pending"]) if a["pending"] else "delivered"
        out.append(
            f"<tr><td>{escape(a['window'])}</td><td>{_f(a['model_version'])}</td>"
            f"<td>{escape(a['rule'])}</td><td>{_f(a['value'])}</td><td>{escape(a['bound'])}</td>"
            f"<td>{escape(a['severity'])}</td><td>{escape(state)}</td></tr>"
        )
    out.append("</table>")
    return out
