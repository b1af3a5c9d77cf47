"""Pages: the overview, models and versions (with promote / rollback), lineage, sign-in.

Example:
    >>> [p.path for p in pages()][:3]
    ['/', '/models', '/models/{name}']
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from mlcycle.errors import BadInput
from mlcycle.registry.models import Registry, parse_model_ref
from mlcycle.store import queries
from mlcycle.ui import lineage, readers, readers_data, readers_loop
from mlcycle.ui.core import REPORT_CSP, Form, Page, Ui
from mlcycle.ui.security import SESSION_COOKIE, SESSION_SECONDS


def overview(ui: Ui, request: Request, form: Form | None) -> Response:
    store = ui.store
    models = readers.models_overview(store)
    for m in models:
        m["loop"] = readers_loop.loop_summary(store, m["name"])
    return ui.page(
        request,
        "overview.html",
        models=models,
        runs=readers.pipeline_runs(store, 5),
        alerts=readers_data.alerts(store)[:10],
        datasets=readers_data.dataset_versions(store)[:3],
    )


def models(ui: Ui, request: Request, form: Form | None) -> Response:
    return ui.page(request, "models.html", models=readers.models_overview(ui.store))


def model(ui: Ui, request: Request, form: Form | None) -> Response:
    data = readers.model_versions(ui.store, request.path_params["name"])
    return ui.page(request, "model.html", model=data, notice=request.query_params.get("notice"))


def version(ui: Ui, request: Request, form: Form | None) -> Response:
    name, number = request.path_params["name"], request.path_params["version"]
    data = readers.version_detail(ui.store, name, number)
    return ui.page(request, "version.html", v=data)


def report(ui: Ui, request: Request, form: Form | None) -> Response:
    path = readers.report_path(
        ui.store, request.path_params["name"], request.path_params["version"]
    )
    return FileResponse(
        path, media_type="text/html", headers={"content-security-policy": REPORT_CSP}
    )


def _field(form: Form | None, key: str) -> str:
    return ((form or {}).get(key) or [""])[0].strip()


def _reason(form: Form | None) -> str:
    reason = _field(form, "reason")
    if not reason:
        raise BadInput(
            "a reason is required",
            "every alias move is recorded in the history with why it was made",
            "go back and say why, e.g. 're-trained on July data'",
        )
    return reason


def promote(ui: Ui, request: Request, form: Form | None) -> Response:
    name = request.path_params["name"]
    alias = _field(form, "alias") or "champion"
    raw_version = _field(form, "version")
    if not raw_version.isdigit():
        raise BadInput(f"version {raw_version!r} is not a number", "", "pick a version")
    reason = _reason(form)
    # Compare-and-set on what the page showed (a `seen_<alias>` field per alias it
    # listed; none: the alias did not exist): a move made meanwhile wins, this one fails.
    seen = _field(form, f"seen_{alias}")
    expected = int(seen) if seen.isdigit() else None
    Registry(ui.store).promote(
        name,
        int(raw_version),
        alias=alias,
        reason=reason,
        force=_field(form, "force") == "on",
        expected=expected,
        actor=ui.actor(request),
    )
    notice = f"{alias} → v{raw_version}"
    return RedirectResponse(f"/models/{quote(name)}?notice={quote(notice)}#history", 303)


def rollback(ui: Ui, request: Request, form: Form | None) -> Response:
    name = request.path_params["name"]
    alias = _field(form, "alias") or "champion"
    current, previous = Registry(ui.store).rollback(
        name, alias=alias, reason=_reason(form), actor=ui.actor(request)
    )
    notice = f"{alias}: v{current} → v{previous} (rolled back)"
    return RedirectResponse(f"/models/{quote(name)}?notice={quote(notice)}#history", 303)


def lineage_page(ui: Ui, request: Request, form: Form | None) -> Response:
    ref = request.path_params["ref"]
    store = ui.store
    if ref.startswith(lineage.PREDICTION_PREFIX):
        return _prediction_page(ui, request, ref.removeprefix(lineage.PREDICTION_PREFIX))
    registry = Registry(store)
    if any(h in ref for h in (":", "@", "/")) or ref in registry.models():
        resolved = registry.resolve(parse_model_ref(ref))
        graph = lineage.model_graph(store, resolved.name, resolved.version)
        title = f"{resolved.name} v{resolved.version}"
    else:
        run = queries.run_by_prefix(store, ref)
        if run is not None:
            return RedirectResponse(f"/pipeline#run-{run['id']}", 303)
        graph = lineage.artifact_graph(store, ref)
        title = f"{store.kind(graph.root)} {graph.root[:12]}"
    nodes = sorted(graph.nodes.values(), key=lambda n: (-n.depth, n.kind, n.label))
    return ui.page(
        request, "lineage.html", title=title, svg=lineage.render(graph), nodes=nodes,
        prediction=None,
    )  # fmt: skip


def _prediction_page(ui: Ui, request: Request, ref: str) -> Response:
    """A logged prediction: the graph to its model version, data and commit; its rows."""
    found = lineage.prediction_graph(ui.store, ref)
    graph = found.graph
    nodes = sorted(graph.nodes.values(), key=lambda n: (-n.depth, n.kind, n.label))
    title = (
        f"row {found.row_id} of request {found.request_id}"
        if found.row_id
        else f"request {found.request_id}"
    )
    return ui.page(
        request,
        "lineage.html",
        title=title,
        svg=lineage.render(graph),
        nodes=nodes,
        prediction=found,
    )


def login(ui: Ui, request: Request, form: Form | None) -> Response:
    target = _field(form, "next") or request.query_params.get("next", "/")
    if not target.startswith("/") or target[1:2] in ("/", "\\"):
        target = "/"  # never redirect off this server ("//host" and "/\\host" are other hosts)
    if form is None:
        return ui.page(request, "login.html", next=target, failed=False, needed=not ui.policy.open)
    scope = None if ui.policy.open else ui.policy.scope_of_token(_field(form, "token"))
    if scope is None and not ui.policy.open:
        return ui.page(request, "login.html", status=401, next=target, failed=True, needed=True)
    response = RedirectResponse(target, 303)
    if scope is not None:
        response.set_cookie(
            SESSION_COOKIE,
            ui.policy.new_session(scope),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            path="/",
        )
    return response


def logout(ui: Ui, request: Request, form: Form | None) -> Response:
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def pages() -> list[Page]:
    return [
        Page("/", overview, "read"),
        Page("/models", models, "read"),
        Page("/models/{name}", model, "read"),
        Page("/models/{name}/{version:int}", version, "read"),
        Page("/models/{name}/{version:int}/report", report, "read"),
        Page("/models/{name}/promote", promote, "write", ("POST",)),
        Page("/models/{name}/rollback", rollback, "write", ("POST",)),
        Page("/lineage/{ref:path}", lineage_page, "read"),
        Page("/login", login, "public", ("GET", "POST")),
        Page("/logout", logout, "public", ("POST",)),
    ]
