"""Page: the continuous-training loop (issue 10) of a model — in flight, stopped or idle,
its runs with their states, shadow and watch verdicts, the rollbacks of its aliases,
one run's transitions — and the latest backtest report of the project.

Example:
    >>> [p.path for p in pages()]
    ['/loop', '/loop/backtest']
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from mlcycle.errors import NotFound
from mlcycle.registry.models import Registry
from mlcycle.ui import readers_loop
from mlcycle.ui.core import REPORT_CSP, Form, Page, Ui


def loop(ui: Ui, request: Request, form: Form | None) -> Response:
    models = Registry(ui.store).models()
    chosen = request.query_params.get("model") or (models[0] if models else None)
    if chosen is not None and chosen not in models:
        return ui.error(
            request, 404, f"no registered model '{chosen}'", "", "pick a model on /loop"
        )
    state = (
        readers_loop.loop_state(ui.store, chosen, request.query_params.get("run"))
        if chosen
        else None
    )
    return ui.page(
        request,
        "loop.html",
        models=models,
        model=chosen,
        state=state,
        backtest=readers_loop.backtest_summary(ui.project),
    )


def backtest(ui: Ui, request: Request, form: Form | None) -> Response:
    path = readers_loop.backtest_report(ui.project)
    if path is None:
        raise NotFound(
            "no backtest report yet",
            f"`mlcycle loop backtest` writes {readers_loop.BACKTEST_FILE} beside the spec",
            "run `mlcycle loop backtest` in the project (docs/loop.md)",
        )
    return FileResponse(
        path, media_type="text/html", headers={"content-security-policy": REPORT_CSP}
    )


def pages() -> list[Page]:
    return [Page("/loop", loop, "read"), Page("/loop/backtest", backtest, "read")]
