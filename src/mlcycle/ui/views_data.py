"""Pages: dataset versions, one version (with its full data report), the diff between
two versions; monitoring windows, charts and alerts.

Example:
    >>> [p.path for p in pages()][:3]
    ['/data', '/data/diff/{old}/{new}', '/data/{dataset_id}']
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from mlcycle.errors import MlcycleError
from mlcycle.monitor.svg import line_chart
from mlcycle.registry.models import Registry
from mlcycle.ui import readers, readers_data
from mlcycle.ui.core import REPORT_CSP, Form, Page, Ui

MAX_FEATURE_CHARTS = 24


def data(ui: Ui, request: Request, form: Form | None) -> Response:
    return ui.page(request, "data.html", versions=readers_data.dataset_versions(ui.store))


def dataset(ui: Ui, request: Request, form: Form | None) -> Response:
    ref = request.path_params["dataset_id"]
    other = request.query_params.get("vs", "").strip()
    if other:
        # The compare form on a version's page: the diff from the chosen version to this one.
        return RedirectResponse(f"/data/diff/{quote(other, safe='')}/{quote(ref, safe='')}", 303)
    detail = readers_data.dataset_detail(ui.store, ref)
    return ui.page(request, "dataset.html", d=detail)


def dataset_report(ui: Ui, request: Request, form: Form | None) -> Response:
    started = request.scope.get("state", {}).get("started", time.perf_counter())
    html = readers_data.data_report_html(ui.project, request.path_params["dataset_id"])
    spent = f"app;dur={(time.perf_counter() - started) * 1e3:.1f}"
    return HTMLResponse(
        html, headers={"content-security-policy": REPORT_CSP, "server-timing": spent}
    )


def dataset_diff(ui: Ui, request: Request, form: Form | None) -> Response:
    diff = readers_data.dataset_diff(
        ui.project, request.path_params["old"], request.path_params["new"]
    )
    return ui.page(request, "dataset_diff.html", diff=diff)


def _pairs(wins: list[dict[str, Any]], key: str) -> tuple[list[float | None], list[float | None]]:
    bands = [w["metrics"].get(key) or [None, None] for w in wins]
    return [readers_data.finite(b[0]) for b in bands], [readers_data.finite(b[1]) for b in bands]


def _series(wins: list[dict[str, Any]], key: str) -> list[float | None]:
    return [readers_data.finite(w["metrics"].get(key)) for w in wins]


def _holdout(ui: Ui, model: str, primary: str) -> float | None:
    """The champion's holdout value of the primary metric (a reference line), if any."""
    try:
        resolved = Registry(ui.store).resolve(f"{model}@champion")
        return readers.open_bundle(ui.store, resolved.bundle_id).meta().metrics.get(primary)
    except MlcycleError:
        return None  # a monitored name that is not a registered model, or no champion


def _charts(ui: Ui, model: str, wins: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [w["key"] for w in wins]
    primary = ui.project.spec.problem.primary_metric or "roc_auc"
    holdout = _holdout(ui, model, primary)
    realized = f"realized:{primary}"
    performance = line_chart(
        keys,
        {
            "realized": _series(wins, realized),
            "estimated (CBPE)": _series(wins, f"estimated:{primary}"),
            "cumulative": _series(wins, f"cumulative:{primary}"),
        },
        title=f"{primary}: realized (95% band), estimated, cumulative",
        bands={"realized": _pairs(wins, f"{realized}_ci")},
        hlines={"holdout": holdout} if holdout is not None else None,
        marks=[i for i, w in enumerate(wins) if w["metrics"].get("concept_drift")],
        width=640,
    )
    anomalies = line_chart(
        keys,
        {
            "outlier rate": _series(wins, "anomaly_rate"),
            "rule breaks": _series(wins, "rule_anomaly_rate"),
        },
        title="anomaly rates (band: expected from the reference)",
        bands={"outlier rate": _pairs(wins, "band:anomaly_rate")},
        width=640,
    )
    share = line_chart(
        keys, {"drift share": _series(wins, "drift_share")}, title="share of drifted features",
        width=640,
    )  # fmt: skip
    features: dict[str, float | None] = {}
    for w in wins:
        for f in w["metrics"].get("drift_report") or []:
            features[f["feature"]] = readers_data.finite(f.get("threshold"))
    per_feature = [
        line_chart(
            keys,
            {name: _series(wins, f"drift_stat:{name}")},
            title=f"drift of {name}",
            hlines={"threshold": threshold} if threshold is not None else None,
            marks=[i for i, w in enumerate(wins) if w["metrics"].get(f"drift:{name}")],
            width=380,
            height=180,
        )
        for name, threshold in list(features.items())[:MAX_FEATURE_CHARTS]
    ]
    return {"performance": performance, "anomalies": anomalies, "share": share,
            "features": per_feature}  # fmt: skip


def monitor(ui: Ui, request: Request, form: Form | None) -> Response:
    store = ui.store
    models = readers_data.monitored_models(store)
    chosen = request.query_params.get("model") or (models[0] if models else None)
    if chosen is not None and chosen not in models:
        return ui.error(
            request, 404, f"no monitoring data for model '{chosen}'", "", "pick a model on /monitor"
        )
    wins = readers_data.monitor_windows(store, chosen) if chosen else []
    latest = next((w for w in reversed(wins) if w["metrics"].get("drift_report")), None)
    return ui.page(
        request,
        "monitor.html",
        models=models,
        model=chosen,
        windows=wins,
        latest=latest,
        charts=_charts(ui, chosen, wins) if chosen and wins else None,
        alerts=readers_data.alerts(store, [chosen]) if chosen else [],
        primary=ui.project.spec.problem.primary_metric or "roc_auc",
    )


def pages() -> list[Page]:
    return [
        Page("/data", data, "read"),
        Page("/data/diff/{old}/{new}", dataset_diff, "read"),
        Page("/data/{dataset_id}", dataset, "read"),
        Page("/data/{dataset_id}/report", dataset_report, "read"),
        Page("/monitor", monitor, "read"),
    ]
