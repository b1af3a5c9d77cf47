"""Pages: dataset versions and one version; monitoring windows, charts and alerts.

Example:
    >>> [p.path for p in pages()]
    ['/data', '/data/{dataset_id}', '/monitor']
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mlcycle.errors import MlcycleError
from mlcycle.monitor.svg import line_chart
from mlcycle.registry.models import Registry
from mlcycle.ui import readers
from mlcycle.ui.core import Form, Page, Ui

MAX_FEATURE_CHARTS = 24


def data(ui: Ui, request: Request, form: Form | None) -> Response:
    return ui.page(request, "data.html", versions=readers.dataset_versions(ui.store))


def dataset(ui: Ui, request: Request, form: Form | None) -> Response:
    detail = readers.dataset_detail(ui.store, request.path_params["dataset_id"])
    return ui.page(request, "dataset.html", d=detail)


def _pairs(wins: list[dict[str, Any]], key: str) -> tuple[list[float | None], list[float | None]]:
    bands = [w["metrics"].get(key) or [None, None] for w in wins]
    return [readers.finite(b[0]) for b in bands], [readers.finite(b[1]) for b in bands]


def _series(wins: list[dict[str, Any]], key: str) -> list[float | None]:
    return [readers.finite(w["metrics"].get(key)) for w in wins]


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
            features[f["feature"]] = readers.finite(f.get("threshold"))
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
    models = readers.monitored_models(store)
    chosen = request.query_params.get("model") or (models[0] if models else None)
    if chosen is not None and chosen not in models:
        return ui.error(
            request, 404, f"no monitoring data for model '{chosen}'", "", "pick a model on /monitor"
        )
    wins = readers.monitor_windows(store, chosen) if chosen else []
    latest = next((w for w in reversed(wins) if w["metrics"].get("drift_report")), None)
    return ui.page(
        request,
        "monitor.html",
        models=models,
        model=chosen,
        windows=wins,
        latest=latest,
        charts=_charts(ui, chosen, wins) if chosen and wins else None,
        alerts=readers.alerts(store, [chosen]) if chosen else [],
        primary=ui.project.spec.problem.primary_metric or "roc_auc",
    )


def pages() -> list[Page]:
    return [
        Page("/data", data, "read"),
        Page("/data/{dataset_id}", dataset, "read"),
        Page("/monitor", monitor, "read"),
    ]
