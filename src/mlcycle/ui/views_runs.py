"""Pages: pipeline runs, the tracked-runs table, one run, and runs compared side by side.

The runs table is a GET form: its address holds the filter (the language of
``mlcycle.search_runs``), the order, the chosen columns and the page, so a
view can be bookmarked and shared.

Example:
    >>> query_of({"filter": ["metrics.valid_roc_auc > 0.8"], "m": ["valid_roc_auc"]}).metrics
    ['valid_roc_auc']
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from mlcycle.errors import BadInput
from mlcycle.ui import charts, readers
from mlcycle.ui.core import Form, Page, Ui

# Metrics worth a column when none is picked, the usual primary metrics first.
PREFERRED = ("valid_roc_auc", "valid_rmse", "valid_accuracy", "valid_r2", "valid_log_loss")


# Summary keys that are for caching and lineage, not for a person reading a run.
QUIET = frozenset(
    {"schema_hash", "model", "first_warnings", "failed", "partitions_hash", "quarantine", "report"}
)


def pipeline(ui: Ui, request: Request, form: Form | None) -> Response:
    runs = readers.pipeline_runs(ui.store, 50)
    return ui.page(request, "pipeline.html", runs=runs, quiet=QUIET)


def _int(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise BadInput(f"{text!r} is not a whole number", "", "fix the address")
    return int(text)


def query_of(params: dict[str, list[str]]) -> readers.RunQuery:
    """The runs-table query an address asks for (``filter``, ``order``, ``m``/``p``/``t``…)."""

    def one(key: str) -> str:
        return (params.get(key) or [""])[0].strip()

    return readers.RunQuery(
        filter=one("filter"),
        order_by=one("order") or "start_time desc",
        experiment=one("experiment") or None,
        metrics=[k for k in params.get("m", []) if k],
        params=[k for k in params.get("p", []) if k],
        tags=[k for k in params.get("t", []) if k],
        offset=_int(one("offset"), 0),
        limit=_int(one("limit"), 50),
        after=one("after"),
    )


def _address(q: readers.RunQuery, **change: Any) -> str:
    """The address of the runs table with ``change`` applied (order, offset…)."""
    fields = {
        "filter": q.filter,
        "order": q.order_by,
        "experiment": q.experiment or "",
        "m": q.metrics,
        "p": q.params,
        "t": q.tags,
        "offset": q.offset,
        "limit": q.limit,
        "after": q.after,
    } | change
    kept = {k: v for k, v in fields.items() if v not in ("", [], None)}
    return "/runs?" + urlencode(kept, doseq=True)


def _sort_link(q: readers.RunQuery, key: str) -> tuple[str, str]:
    """The address that sorts by ``key`` (flipping the direction if it is the current one)."""
    current, _, direction = q.order_by.partition(" ")
    if current == key:
        flipped = "asc" if direction.strip().lower() == "desc" else "desc"
        order = f"{key} {flipped}"
        return _address(q, order=order, offset=0, after=""), "▼" if flipped == "asc" else "▲"
    return _address(q, order=f"{key} desc", offset=0, after=""), ""


def _next(q: readers.RunQuery, page: readers.RunsPage) -> str | None:
    if not page.has_next:
        return None
    return _address(q, offset=q.offset + q.limit, after=page.next_after)


def _previous(q: readers.RunQuery) -> str | None:
    """The page before (by offset); from a keyset page, back to the first page."""
    if not q.offset:
        return None
    if q.after:
        return _address(q, offset=0, after="")
    return _address(q, offset=max(q.offset - q.limit, 0))


def runs(ui: Ui, request: Request, form: Form | None) -> Response:
    params = {k: request.query_params.getlist(k) for k in request.query_params}
    q = query_of(params)
    error = None
    try:
        page = readers.runs_page(ui.store, q)
    except BadInput as exc:
        error = exc
        page = readers.RunsPage([], False, {"metrics": [], "params": [], "tags": []}, [])
    if not q.metrics and not error:
        seen = page.keys["metrics"]
        preferred = [k for k in PREFERRED if k in seen]
        q.metrics = (preferred or [k for k in seen if k.startswith("valid_")] or seen)[:3]
    sort = {
        key: _sort_link(q, key)
        for key in (
            "name",
            "status",
            "start_time",
            "duration_s",
            *[f"metrics.{m}" for m in q.metrics],
        )
    }
    return ui.page(
        request,
        "runs.html",
        status=400 if error else 200,
        q=q,
        page=page,
        error=error,
        sort=sort,
        keys={
            "m": sorted({*page.keys["metrics"], *q.metrics}),
            "p": sorted({*page.keys["params"], *q.params}),
            "t": sorted({*page.keys["tags"], *q.tags}),
        },
        next_url=_next(q, page),
        prev_url=_previous(q),
        page_sizes=readers.PAGE_SIZES,
    )


def run(ui: Ui, request: Request, form: Form | None) -> Response:
    data = readers.run_detail(ui.store, request.path_params["run_id"])
    svgs = [
        charts.curves(key, {data["name"]: [(s, v) for s, v, _ in points]})
        for key, points in sorted(data["curves"].items())
        if len(points) > 1
    ]
    return ui.page(request, "run.html", run=data, charts=svgs)


def compare(ui: Ui, request: Request, form: Form | None) -> Response:
    selected = readers.compare_runs(ui.store, request.query_params.getlist("id"))
    keys: dict[str, list[str]] = {"params": [], "metrics": [], "tags": []}
    for kind in keys:
        keys[kind] = sorted({k for r in selected for k in r[kind]})
    labels = [f"{r['name']} {r['id'][:6]}" for r in selected]
    svgs = [
        charts.curves(
            key,
            {
                label: [(s, v) for s, v, _ in r["curves"].get(key, [])]
                for label, r in zip(labels, selected, strict=True)
                if key in r["curves"]
            },
        )
        for key in keys["metrics"]
        if any(len(r["curves"].get(key, [])) > 1 for r in selected)
    ]
    differ = {
        kind: [k for k in keys[kind] if len({str(r[kind].get(k)) for r in selected}) > 1]
        for kind in keys
    }
    return ui.page(
        request, "compare.html", runs=selected, labels=labels, keys=keys, differ=differ, charts=svgs
    )


def pages() -> list[Page]:
    return [
        Page("/pipeline", pipeline, "read"),
        Page("/runs", runs, "read"),
        Page("/runs/compare", compare, "read"),
        Page("/runs/{run_id}", run, "read"),
    ]
