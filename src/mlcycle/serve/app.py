"""The REST service: Open Inference Protocol v2, a plain ``/predict``, metrics and admin.

Built on Starlette directly (FastAPI is not a dependency); the OpenAPI
document is written by hand from the model's schema (``serve/openapi.py``),
and ``/docs`` is a small self-contained HTML page (no CDN).

Where things are: this module assembles the app (routes, lifespan, GC
settings); ``service.py`` holds what every route shares (request ids, tokens,
errors as JSON, metrics, scoring, the prediction log, shadow scoring);
``routes_v2.py``, ``routes_predict.py`` and ``routes_admin.py`` hold the
handlers; ``responses.py`` the JSON response and error shapes.

Example:
    >>> runtime = ModelRuntime.load(Path("bundle"), version=3)
    >>> uvicorn.run(create_app(runtime), host="127.0.0.1", port=8000)
    $ curl -s localhost:8000/predict -d '[{"dep_delay": 5, "distance": 700, ...}]'
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from mlcycle.errors import BadInput
from mlcycle.serve import routes_admin, routes_predict, routes_v2
from mlcycle.serve.deploy import Deployment, Resolver, Swapper
from mlcycle.serve.gctune import settle_heap
from mlcycle.serve.metrics import Metrics
from mlcycle.serve.predlog import PredictionLog
from mlcycle.serve.responses import JSONResponse, http_exception, unhandled
from mlcycle.serve.runtime import ModelRuntime
from mlcycle.serve.service import Service

__all__ = ["JSONResponse", "create_app"]

logger = logging.getLogger("mlcycle.serve")


def create_app(
    runtime: ModelRuntime,
    *,
    max_body_bytes: int = 10_000_000,
    request_log: bool = False,
    challenger: ModelRuntime | None = None,
    canary: float = 0.0,
    shadow: bool = False,
    resolver: Resolver | None = None,
    poll_seconds: float = 5.0,
    prediction_log: PredictionLog | None = None,
    admin_token: str | None = None,
    predict_token: str | None = None,
    max_batch_rows: int = 2048,
    tune_gc: bool = True,
) -> Starlette:
    """The ASGI app serving ``runtime`` (the champion).

    Routes: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
    ``/v2/models/{name}[/versions/{v}]`` (metadata), ``.../ready``,
    ``POST .../infer`` (Open Inference Protocol v2), ``POST /predict``
    (records or ``{"columns", "data"}``), ``GET /metrics``, ``GET /openapi.json``,
    ``GET /docs``, ``POST /admin/reload`` and ``GET|POST /admin/traffic``.

    ``resolver(alias)`` returns ``(version, bundle folder)`` or ``None``; with
    it the service polls ``champion`` and ``challenger`` every
    ``poll_seconds`` and swaps a moved alias in without downtime.
    ``canary`` is the share of requests the challenger answers; with
    ``shadow`` the challenger also scores every champion request (logged
    with role ``shadow``). Admin routes need ``admin_token`` as a bearer
    token (they are off without one); prediction routes need
    ``predict_token`` when it is set.

    Example:
        >>> app = create_app(ModelRuntime.load(Path("bundle"), version=1), request_log=True)
        >>> uvicorn.run(app, port=8000)
    """
    if max_body_bytes <= 0:
        raise BadInput(
            f"max_body_bytes must be positive, got {max_body_bytes}",
            "it caps the size of a request body",
            "set serve.max_body_bytes to a positive number of bytes",
        )
    metrics = Metrics()
    swapper = Swapper(
        Deployment.start(runtime, challenger, canary, shadow, max_batch_rows, metrics),
        resolver=resolver,
        poll_seconds=poll_seconds,
        metrics=metrics,
        max_batch_rows=max_batch_rows,
    )
    if resolver is not None and (canary > 0 or shadow) and challenger is None:
        try:
            swapper.check()  # load the challenger now rather than at the first poll
        except Exception as exc:
            logger.warning("cannot load the challenger yet: %s", exc)
    service = Service(
        swapper,
        metrics=metrics,
        max_body_bytes=max_body_bytes,
        request_log=request_log,
        prediction_log=prediction_log,
        admin_token=admin_token,
        predict_token=predict_token,
    )
    if request_log:
        _ensure_request_log_visible()
    routes = [
        *routes_v2.routes(service),
        *routes_predict.routes(service),
        *routes_admin.routes(service),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        swapper.start()
        if tune_gc:
            settle_heap()  # the model is loaded and warm: keep it out of every collection
        try:
            yield
        finally:
            await swapper.stop()
            if prediction_log is not None:
                # uvicorn runs this after in-flight requests finished (SIGTERM
                # included): everything answered is in the queue, so nothing is lost.
                await run_in_threadpool(prediction_log.close)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception, Exception: unhandled},
    )
    app.state.runtime = runtime
    app.state.swapper = swapper
    app.state.metrics = metrics
    return app


def _ensure_request_log_visible() -> None:
    """Asked for a request log with logging unconfigured (uvicorn sets up only its
    own loggers): print it to stderr rather than drop it silently."""
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
