"""Page: the continuous-training loop (issue 10) of a model — in flight, stopped or idle,
its runs with their states, shadow and watch verdicts, and one run's transitions.

Example:
    >>> [p.path for p in pages()]
    ['/loop']
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mlcycle.registry.models import Registry
from mlcycle.ui import readers
from mlcycle.ui.core import Form, Page, Ui


def loop(ui: Ui, request: Request, form: Form | None) -> Response:
    models = Registry(ui.store).models()
    chosen = request.query_params.get("model") or (models[0] if models else None)
    if chosen is not None and chosen not in models:
        return ui.error(
            request, 404, f"no registered model '{chosen}'", "", "pick a model on /loop"
        )
    state = (
        readers.loop_state(ui.store, chosen, request.query_params.get("run")) if chosen else None
    )
    return ui.page(request, "loop.html", models=models, model=chosen, state=state)


def pages() -> list[Page]:
    return [Page("/loop", loop, "read")]
