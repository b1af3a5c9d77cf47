"""The REST service: Open Inference Protocol v2, a plain ``/predict``, metrics and admin.

Built on Starlette directly (FastAPI is not a dependency); the OpenAPI
document is written by hand from the model's schema (``openapi.py``), and
``/docs`` is a small self-contained HTML page (no CDN).

Where things are: this module assembles the app (routes, lifespan, GC
settings) from one :class:`~mlcycle.serve.http.settings.ServeSettings`;
``service.py`` holds what every route shares (request ids, errors as JSON,
metrics, scoring, the prediction log, shadow scoring); ``auth.py`` the
tokens; ``routes_v2.py``, ``routes_predict.py``, ``routes_invocations.py``
(MLflow's scoring protocol) and ``routes_admin.py`` the handlers;
``responses.py`` the JSON response and error shapes; ``deploy.py`` the models
served and how they are swapped.

Example:
    >>> runtime = ModelRuntime.load(Path("bundle"), version=3)
    >>> uvicorn.run(create_app(runtime, ServeSettings()), host="127.0.0.1", port=8000)
    $ curl -s localhost:8000/predict -d '[{"dep_delay": 5, "distance": 700, ...}]'
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from mlcycle.serve.http import routes_admin, routes_invocations, routes_predict, routes_v2
from mlcycle.serve.http.deploy import Deployment, Resolver, Swapper
from mlcycle.serve.http.metrics import Metrics
from mlcycle.serve.http.responses import JSONResponse, http_exception, unhandled
from mlcycle.serve.http.service import Service
from mlcycle.serve.http.settings import ServeSettings
from mlcycle.serve.model import ModelRuntime, settle_heap
from mlcycle.serve.predlog import PredictionLog

__all__ = ["JSONResponse", "create_app"]

logger = logging.getLogger("mlcycle.serve")


def create_app(
    runtime: ModelRuntime,
    settings: ServeSettings | None = None,
    *,
    challenger: ModelRuntime | None = None,
    resolver: Resolver | None = None,
    prediction_log: PredictionLog | None = None,
) -> Starlette:
    """The ASGI app serving ``runtime`` (the champion), run as ``settings`` say.

    Routes: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
    ``/v2/models/{name}[/versions/{v}]`` (metadata), ``.../ready``,
    ``POST .../infer`` (Open Inference Protocol v2), ``POST /predict``
    (records or ``{"columns", "data"}``), ``POST /invocations`` (MLflow's scoring
    protocol, with ``GET /ping``, ``/health``, ``/version``), ``GET /metrics``,
    ``GET /openapi.json``, ``GET /docs``, ``POST /admin/reload`` and ``GET|POST /admin/traffic``.

    ``resolver(alias)`` returns ``(version, bundle folder)`` or ``None``; with
    it the service polls ``champion`` and ``challenger`` every
    ``settings.poll_seconds`` and swaps a moved alias in without downtime.
    ``challenger`` is a challenger loaded already; every prediction goes to
    ``prediction_log`` when one is given.

    Example:
        >>> app = create_app(ModelRuntime.load(Path("bundle"), version=1),
        ...                  ServeSettings(request_log=True))
        >>> uvicorn.run(app, port=8000)
    """
    settings = settings or ServeSettings()
    metrics = Metrics()
    deployment = Deployment.start(
        runtime,
        challenger,
        settings.canary,
        settings.shadow,
        settings.max_batch_rows,
        metrics,
    )
    policy = settings.out_of_range
    swapper = Swapper(
        deployment,
        resolver=resolver,
        poll_seconds=settings.poll_seconds,
        metrics=metrics,
        max_batch_rows=settings.max_batch_rows,
        # A version swapped in keeps the server's --out-of-range override, if any.
        loader=lambda folder, version: ModelRuntime.load(folder, version, out_of_range=policy),
    )
    if resolver is not None and (settings.canary > 0 or settings.shadow) and challenger is None:
        try:
            swapper.check()  # load the challenger now rather than at the first poll
        except Exception as exc:
            logger.warning("cannot load the challenger yet: %s", exc)
    if prediction_log is not None:
        prediction_log.attach(metrics)  # its counts, summed over the workers like the rest
    service = Service(swapper, settings=settings, metrics=metrics, prediction_log=prediction_log)
    if settings.request_log:
        _ensure_request_log_visible()
    routes = [
        *routes_v2.routes(service),
        *routes_predict.routes(service),
        *routes_invocations.routes(service),
        *routes_admin.routes(service),
    ]
    app = Starlette(
        routes=routes,
        lifespan=_lifespan(swapper, prediction_log, settings.tune_gc),
        exception_handlers={HTTPException: http_exception, Exception: unhandled},
    )
    app.state.runtime = runtime
    app.state.swapper = swapper
    app.state.metrics = metrics
    app.state.settings = settings
    return app


def _lifespan(
    swapper: Swapper, prediction_log: PredictionLog | None, tune_gc: bool
) -> Callable[[Starlette], Any]:
    """Start polling (and settle the heap) before traffic; stop, then flush the log, after."""

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

    return lifespan


def _ensure_request_log_visible() -> None:
    """Asked for a request log with logging unconfigured (uvicorn sets up only its
    own loggers): print it to stderr rather than drop it silently."""
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
