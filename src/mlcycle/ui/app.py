"""The dashboard's ASGI app: pages declared with their scope, guarded, rendered by Jinja2.

Each page is a :class:`Page` (path, handler, scope, methods). :func:`create_app`
wraps every handler in the guard that checks the request's scope (and, for a
POST, its CSRF token), runs the handler in a worker thread (the readers are
synchronous SQL), and turns mlcycle errors into pages: a missing model or run
is a 404 page, bad input a 400 page, never a 500.

Example:
    >>> app = create_app(Project.load("mlcycle.yaml"), AccessPolicy())
    >>> sorted({route_scope(r) for r in app.routes})
    ['public', 'read', 'write']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from mlcycle.errors import MlcycleError, NotFound
from mlcycle.registry.models import AliasConflict
from mlcycle.ui import views_data, views_loop, views_models, views_runs
from mlcycle.ui.core import STATIC, Form, Page, Ui
from mlcycle.ui.security import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, AccessPolicy, allows

if TYPE_CHECKING:
    from mlcycle.pipeline.project import Project


def _denied(ui: Ui, request: Request, granted: str | None, needed: str) -> Response:
    if granted is None and request.method == "GET" and "authorization" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if granted is None:
        return ui.error(request, 401, "sign in first", "this page needs a token", "open /login")
    return ui.error(
        request,
        403,
        f"this needs the {needed} scope",
        f"you are signed in with the {granted} scope",
        "sign in with the write token (--token) to promote or roll back",
    )


def _status_of(exc: MlcycleError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, AliasConflict):
        return 409
    return 400 if exc.exit_code == 2 else 500


MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> Form | None:
    """A URL-encoded form body as lists of values; ``None`` if it is not one (or too big).

    Parsed here rather than with Starlette's ``request.form()``, which needs
    python-multipart: every form of the dashboard is a few short fields.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return None


def _endpoint(ui: Ui, page: Page) -> Callable[[Request], Any]:
    async def guarded(request: Request) -> Response:
        request.scope.setdefault("state", {})["started"] = time.perf_counter()
        granted = ui.policy.granted(
            request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE)
        )
        if not allows(granted, page.scope):
            return _denied(ui, request, granted, page.scope)
        form: Form | None = None
        if request.method == "POST":
            form = await read_form(request)
            if form is None:
                return ui.error(
                    request,
                    415,
                    "this form could not be read",
                    f"forms are sent URL-encoded and under {MAX_FORM_BYTES // 1024} KiB",
                    "submit the form from the page",
                )
            sent = (form.get(CSRF_FIELD) or [""])[0]
            if not ui.policy.check_csrf(request.cookies.get(CSRF_COOKIE), sent):
                return ui.error(
                    request,
                    403,
                    "the form's security token is missing or stale",
                    "every change must come from a page this server rendered (CSRF protection)",
                    "reload the page and submit the form again",
                )
        try:
            return await run_in_threadpool(page.handler, ui, request, form)
        except MlcycleError as exc:
            return ui.error(request, _status_of(exc), exc.what, exc.why, exc.fix)

    guarded.ui_scope = page.scope  # type: ignore[attr-defined]
    return guarded


class Public:
    """An ASGI app (the static files) that needs no scope, declared as such."""

    ui_scope = "public"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def route_scope(route: Any) -> str | None:
    """The scope a route declared (``None``: it declared none, which a test forbids)."""
    target = getattr(route, "endpoint", None) or getattr(route, "app", None)
    return getattr(target, "ui_scope", None)


def all_pages() -> list[Page]:
    """Every page of the dashboard, each with its declared scope."""
    return [
        *views_models.pages(),
        *views_runs.pages(),
        *views_data.pages(),
        *views_loop.pages(),
    ]


def create_app(project: Project, policy: AccessPolicy) -> Starlette:
    """The dashboard of ``project`` as an ASGI app.

    Example:
        >>> from starlette.testclient import TestClient
        >>> TestClient(create_app(project, AccessPolicy())).get("/models").status_code
        200
    """
    ui = Ui(project, policy)
    routes: list[Any] = [
        Route(p.path, _endpoint(ui, p), methods=list(p.methods)) for p in all_pages()
    ]
    routes.append(Mount("/static", app=Public(StaticFiles(directory=str(STATIC))), name="static"))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return ui.error(request, 404, f"no page at {request.url.path}", "", "start from /")
        return ui.error(request, status, str(getattr(exc, "detail", "error")))

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.ui = ui
    return app
