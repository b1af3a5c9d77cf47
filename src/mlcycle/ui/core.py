"""What every page handler shares: the :class:`Ui` (project, policy, templates) and
the :class:`Page` declaration.

Example:
    >>> Page("/models", models, "read").methods
    ('GET',)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mlcycle.ui.security import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, AccessPolicy

if TYPE_CHECKING:
    from mlcycle.pipeline.project import Project
    from mlcycle.store import Store

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# mlcycle's own self-contained reports (evaluation, data, backtest: inline style and
# SVG, no script) are served with a policy that lets them style themselves and
# nothing else (no scripts, no fetches).
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"

Form = dict[str, list[str]]
Handler = Callable[["Ui", Request, Form | None], Response]


@dataclass(frozen=True)
class Page:
    """One route of the dashboard and the scope a request needs to use it."""

    path: str
    handler: Handler
    scope: str
    methods: tuple[str, ...] = ("GET",)


def _fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: 4 significant digits, blanks for nothing."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _when(value: Any) -> str:
    """A timestamp (ISO text or epoch seconds) as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if value is None or value == "":
        return ""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value).replace("T", " ")[:19]


class Ui:
    """What every handler gets: the project, its store, the access policy, the templates."""

    def __init__(self, project: Project, policy: AccessPolicy) -> None:
        self.project = project
        self.policy = policy
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,  # every value is escaped unless a view marks it as built SVG
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(fmt=_fmt, when=_when, q=lambda v: quote(str(v), safe=""))

    @property
    def store(self) -> Store:
        return self.project.store

    def page(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """Render ``template``; hand out a CSRF cookie when the browser has no valid one."""
        csrf = request.cookies.get(CSRF_COOKIE, "")
        fresh = not self.policy.check_csrf(csrf, csrf)
        if fresh:
            csrf = self.policy.new_csrf()
        granted = self.policy.granted(
            request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE)
        )
        started = request.scope.get("state", {}).get("started", time.perf_counter())
        html = self.env.get_template(template).render(
            project=self.project.name,
            path=request.url.path,
            csrf_field=CSRF_FIELD,
            csrf=csrf,
            can_write=granted == "write",
            signed_in=not self.policy.open and granted is not None,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1e3:.1f}"
        if fresh:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/")
        return response

    def actor(self, request: Request) -> str:
        """Who the request acts as in the alias history (only write requests act).

        Example:
            >>> ui.actor(request)
            'ana'
        """
        return self.policy.actor()

    def error(
        self, request: Request, status: int, what: str, why: str = "", fix: str = ""
    ) -> Response:
        return self.page(
            request, "error.html", status=status, status_code=status, what=what, why=why, fix=fix
        )
