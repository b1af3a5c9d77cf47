"""The REST service: Open Inference Protocol v2, a plain ``/predict``, metrics and admin.

Built on Starlette directly (FastAPI is not a dependency); the OpenAPI
document is written by hand from the model's schema (``serve/openapi.py``),
and ``/docs`` is a small self-contained HTML page (no CDN).

Every input problem is a 4xx JSON body ``{"error", "why", "fix", "details",
"request_id"}``; anything else is a 500 JSON body with the request id, and the
traceback goes to the log, never to the client.

Clean JSON records take the compiled path (``serve/fastpath.py``: no pandas,
ONNX Runtime when the bundle carries a checked export); anything unusual
takes the generic path, which names every bad field. The models being served
form a :class:`~mlcycle.serve.deploy.Deployment` (champion, optional
challenger, canary share, shadow flag) that is replaced atomically: a request
keeps the deployment it started with, so a swap fails no request.

Example:
    >>> runtime = ModelRuntime.load(Path("bundle"), version=3)
    >>> uvicorn.run(create_app(runtime), host="127.0.0.1", port=8000)
    $ curl -s localhost:8000/predict -d '[{"dep_delay": 5, "distance": 700, ...}]'
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mlcycle import __version__
from mlcycle.errors import BadInput, NotFound
from mlcycle.serve.deploy import Deployment, Resolver, Served, Swapper
from mlcycle.serve.metrics import Metrics
from mlcycle.serve.openapi import docs_page, openapi_document
from mlcycle.serve.parsing import (
    HTTPProblem,
    _loads,
    _prediction_datatype,
    infer_records,
    model_metadata,
    parse_infer_body,
    predict_records,
)
from mlcycle.serve.predlog import LogEntry, PredictionLog, now
from mlcycle.serve.runtime import InputError, ModelRuntime

logger = logging.getLogger("mlcycle.serve")

# Bodies above this size are parsed and checked in a worker thread so a big
# batch does not stall health checks and small requests.
_INLINE_BODY_BYTES = 64_000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


class JSONResponse(Response):
    """A JSON response encoded by orjson; NaN and infinities become ``null``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(
            content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str
        )


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
    service = _Service(
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
    model = "/v2/models/{name}"
    version = model + "/versions/{version}"
    w = service.endpoint
    routes = [
        Route("/v2", w(service.server_metadata, "/v2"), methods=["GET"]),
        Route("/v2/health/live", w(service.live, "/v2/health/live"), methods=["GET"]),
        Route("/v2/health/ready", w(service.ready, "/v2/health/ready"), methods=["GET"]),
        Route(model, w(service.model_metadata, model), methods=["GET"]),
        Route(version, w(service.model_metadata, version), methods=["GET"]),
        Route(model + "/ready", w(service.model_ready, model + "/ready"), methods=["GET"]),
        Route(version + "/ready", w(service.model_ready, version + "/ready"), methods=["GET"]),
        Route(model + "/infer", w(service.infer, model + "/infer", "predict"), methods=["POST"]),
        Route(
            version + "/infer", w(service.infer, version + "/infer", "predict"), methods=["POST"]
        ),
        Route("/predict", w(service.predict, "/predict", "predict"), methods=["POST"]),
        Route("/metrics", w(service.metrics_text, "/metrics"), methods=["GET"]),
        Route("/admin/reload", w(service.reload, "/admin/reload", "admin"), methods=["POST"]),
        Route(
            "/admin/traffic",
            w(service.traffic, "/admin/traffic", "admin"),
            methods=["GET", "POST"],
        ),
        Route("/openapi.json", w(service.openapi, "/openapi.json"), methods=["GET"]),
        Route("/docs", w(service.docs, "/docs"), methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        swapper.start()
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
        exception_handlers={HTTPException: _http_exception, Exception: _unhandled},
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


class _Service:
    def __init__(
        self,
        swapper: Swapper,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        request_log: bool,
        prediction_log: PredictionLog | None,
        admin_token: str | None,
        predict_token: str | None,
    ) -> None:
        self.swapper = swapper
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.request_log = request_log
        self.log = prediction_log
        self.admin_token = admin_token or None
        self.predict_token = predict_token or None
        self._docs_cache: dict[int, tuple[bytes, str]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def champion(self) -> ModelRuntime:
        return self.swapper.deployment.champion.runtime

    # --- plumbing -------------------------------------------------------------------

    def endpoint(
        self, fn: Callable[[Request, str], Awaitable[Response]], route: str, guard: str = ""
    ) -> Handler:
        """Wrap a handler: request id, token check, errors as JSON, metrics, request log."""

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            rid = _request_id(request)
            metrics = self.metrics
            metrics.in_flight += 1
            try:
                self._authorize(request, guard)
                response = await fn(request, rid)
            except HTTPProblem as exc:
                response = _problem(exc.status, exc.body, rid)
            except InputError as exc:
                response = _problem(422, exc.to_dict(), rid)
            except NotFound as exc:
                response = _problem(404, exc.to_dict(), rid)
            except BadInput as exc:
                response = _problem(422, exc.to_dict(), rid)
            except ClientDisconnect:
                response = _problem(400, {"error": "client disconnected"}, rid)
            except Exception:
                logger.exception(
                    "request %s %s failed (request id %s)", request.method, request.url.path, rid
                )
                response = _problem(
                    500,
                    {
                        "error": "internal error",
                        "why": "the service failed on a valid request; this is a bug",
                        "fix": f"report it with request id {rid}; the log has the traceback",
                    },
                    rid,
                )
            finally:
                metrics.in_flight -= 1
            response.headers["X-Request-ID"] = rid
            elapsed = time.perf_counter() - started
            metrics.observe(route, response.status_code, elapsed)
            if self.request_log:
                logger.info(
                    "%s %s %d %.1fms request_id=%s model=%s version=%s",
                    request.method,
                    request.url.path,
                    response.status_code,
                    elapsed * 1e3,
                    rid,
                    self.champion.meta.name,
                    self.champion.version,
                )
            return response

        return handler

    def _authorize(self, request: Request, guard: str) -> None:
        if not guard:
            return
        token = self.admin_token if guard == "admin" else self.predict_token
        if token is None:
            if guard == "admin":
                raise HTTPProblem(
                    403,
                    "admin endpoints are disabled",
                    "the server was started without an admin token",
                    "set MLCYCLE_ADMIN_TOKEN before starting `mlcycle serve`",
                )
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            problem = HTTPProblem(
                401,
                "missing or wrong bearer token",
                f"{'admin' if guard == 'admin' else 'prediction'} endpoints need "
                "'Authorization: Bearer <token>'",
                "send the token the server was started with",
            )
            raise problem

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise HTTPProblem(
                    400,
                    "invalid Content-Length header",
                    f"got {declared[:40]!r}",
                    "send a byte count",
                ) from None
            if size > self.max_body_bytes:
                raise self._too_large(size)
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            # Content-Length may be absent (chunked) or wrong: count what arrives.
            if total > self.max_body_bytes:
                raise self._too_large(total)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, size: int) -> HTTPProblem:
        return HTTPProblem(
            413,
            "request body too large",
            f"{size} bytes is over the limit of {self.max_body_bytes} bytes",
            "split the batch into smaller requests, use `mlcycle predict` for files, "
            "or raise serve.max_body_bytes",
        )

    async def _off_loop(self, size: int, fn: Callable[[], T]) -> T:
        if size > _INLINE_BODY_BYTES:
            return await run_in_threadpool(fn)
        return fn()

    def _check_model(self, request: Request, runtime: ModelRuntime) -> None:
        name = request.path_params.get("name")
        version = request.path_params.get("version")
        served = runtime.meta.name
        current = None if runtime.version is None else str(runtime.version)
        if name != served:
            raise HTTPProblem(
                404,
                f"model '{name}' not found",
                f"this server serves model '{served}'",
                f"use /v2/models/{served}",
            )
        if version is not None and version != current:
            raise HTTPProblem(
                404,
                f"version '{version}' of model '{name}' not found",
                f"this server serves version {current or '(unversioned)'}",
                f"use /v2/models/{served} without a version",
            )

    async def _score(
        self, served: Served, records: list[dict[str, Any]], size: int
    ) -> tuple[list[Any], Any, Any]:
        """(labels, probabilities, validated inputs) for records, on the fastest path they allow."""
        rt = served.runtime

        def prepare() -> tuple[Any, Any]:
            matrix = rt.encode_records(records)
            if matrix is not None:
                return matrix, records
            frame = rt.validate_records(records)
            if rt.plan is not None:
                return rt.plan.encode_frame(frame), frame
            return frame, frame

        item, inputs = await self._off_loop(size, prepare)
        labels, proba = await served.batcher.predict(item)
        return labels, proba, inputs

    def _log(
        self, served: Served, role: str, rid: str, records: Any, inputs: Any, out: Any
    ) -> None:
        if self.log is None:
            return
        labels, proba = out
        id_column = served.runtime.meta.id_column
        row_ids = None
        if id_column and isinstance(records, list) and records and id_column in records[0]:
            row_ids = [r.get(id_column) for r in records]
        self.log.submit(LogEntry(served.info, role, rid, now(), inputs, row_ids, labels, proba))

    def _shadow(self, deployment: Deployment, rid: str, records: list[dict[str, Any]]) -> None:
        challenger = deployment.challenger
        if challenger is None:
            return
        try:
            rt = challenger.runtime
            matrix = rt.encode_records(records)
            inputs: Any = records
            if matrix is None:
                inputs = rt.validate_records(records)
                out = rt.predict_arrays(inputs)
            else:
                out = rt.predict_matrix(matrix)
        except Exception as exc:
            self.metrics.shadow_errors += 1
            logger.debug("shadow prediction failed for %s: %s", rid, exc)
            return
        self._log(challenger, "shadow", rid, records, inputs, out)

    def _keep(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- routes ---------------------------------------------------------------------

    async def server_metadata(self, request: Request, rid: str) -> Response:
        return JSONResponse({"name": "mlcycle", "version": __version__, "extensions": []})

    async def live(self, request: Request, rid: str) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request, rid: str) -> Response:
        return JSONResponse({"ready": True})

    async def model_ready(self, request: Request, rid: str) -> Response:
        runtime = self.champion
        self._check_model(request, runtime)
        return JSONResponse({"name": runtime.meta.name, "ready": True})

    async def model_metadata(self, request: Request, rid: str) -> Response:
        runtime = self.champion
        self._check_model(request, runtime)
        return JSONResponse(model_metadata(runtime))

    async def openapi(self, request: Request, rid: str) -> Response:
        return Response(self._documents()[0], media_type="application/json")

    async def docs(self, request: Request, rid: str) -> Response:
        return HTMLResponse(self._documents()[1])

    def _documents(self) -> tuple[bytes, str]:
        runtime = self.champion
        cached = self._docs_cache.get(id(runtime))
        if cached is None:
            cached = (orjson.dumps(openapi_document(runtime)), docs_page(runtime))
            self._docs_cache = {id(runtime): cached}
        return cached

    async def metrics_text(self, request: Request, rid: str) -> Response:
        deployment = self.swapper.deployment
        versions = {"champion": deployment.champion.runtime.version}
        if deployment.challenger is not None:
            versions["challenger"] = deployment.challenger.runtime.version
        text = self.metrics.render(versions, self.log)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def reload(self, request: Request, rid: str) -> Response:
        return JSONResponse(await run_in_threadpool(self.swapper.check))

    async def traffic(self, request: Request, rid: str) -> Response:
        if request.method == "GET":
            return JSONResponse(self.swapper.deployment.describe())
        body = _loads(await self._body(request))
        current = self.swapper.deployment
        if not isinstance(body, dict) or not set(body) <= {"canary", "shadow"}:
            raise HTTPProblem(
                422,
                "invalid traffic settings",
                'expected an object with "canary" (0 to 1) and/or "shadow" (true/false)',
                'send e.g. {"canary": 0.1, "shadow": false}',
            )
        canary = body.get("canary", current.canary)
        shadow = body.get("shadow", current.shadow)
        if not isinstance(shadow, bool):
            raise HTTPProblem(422, "invalid traffic settings", "shadow must be true or false")
        result = await run_in_threadpool(self.swapper.set_traffic, canary, shadow)
        return JSONResponse(result)

    async def predict(self, request: Request, rid: str) -> Response:
        deployment = self.swapper.deployment
        served, role = deployment.pick()
        runtime = served.runtime
        body = await self._body(request)
        size = len(body)
        payload = await self._off_loop(size, lambda: _loads(body))
        records = predict_records(runtime, payload)
        labels, proba, inputs = await self._score(served, records, size)
        out: dict[str, Any] = {
            "model": runtime.meta.name,
            "model_version": runtime.version,
            "request_id": rid,
            "predictions": labels,
        }
        if proba is not None:
            out["probabilities"] = np.ascontiguousarray(proba)
            out["classes"] = runtime.classes
        self._after(deployment, served, role, rid, records, inputs, (labels, proba))
        return JSONResponse(out)

    def _after(
        self,
        deployment: Deployment,
        served: Served,
        role: str,
        rid: str,
        records: list[dict[str, Any]],
        inputs: Any,
        out: Any,
    ) -> None:
        self._log(served, role, rid, records, inputs, out)
        if deployment.shadow and role == "champion" and deployment.challenger is not None:
            self._keep(run_in_threadpool(self._shadow, deployment, rid, records))

    async def infer(self, request: Request, rid: str) -> Response:
        deployment = self.swapper.deployment
        self._check_model(request, deployment.champion.runtime)
        served, role = deployment.pick()
        runtime = served.runtime
        body = await self._body(request)
        size = len(body)

        def parse() -> tuple[list[dict[str, Any]], set[str] | None, Any]:
            payload = _loads(body)
            columns, rows, wanted = parse_infer_body(runtime, payload)
            if rows == 0:
                runtime.validate_columns(columns, 0)  # the empty-batch error
            return infer_records(columns, rows), wanted, payload.get("id")

        records, wanted, request_id = await self._off_loop(size, parse)
        labels, proba, inputs = await self._score(served, records, size)
        rows = len(labels)
        outputs: list[dict[str, Any]] = [
            {
                "name": "predictions",
                "shape": [rows],
                "datatype": _prediction_datatype(runtime),
                "data": labels,
            }
        ]
        if proba is not None:
            outputs.append(
                {
                    "name": "probabilities",
                    "shape": [rows, proba.shape[1]],
                    "datatype": "FP64",
                    "data": proba.reshape(-1),
                    "parameters": {"classes": runtime.classes},
                }
            )
        if wanted is not None:
            outputs = [o for o in outputs if o["name"] in wanted]
        self._after(deployment, served, role, rid, records, inputs, (labels, proba))
        return JSONResponse(
            {
                "model_name": runtime.meta.name,
                "model_version": None if runtime.version is None else str(runtime.version),
                "id": request_id if request_id is not None else rid,
                "parameters": {"request_id": rid},
                "outputs": outputs,
            }
        )


# --- responses ----------------------------------------------------------------------


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def _problem(status: int, body: dict[str, Any], rid: str) -> Response:
    payload = {"error": "", "why": "", "fix": "", "details": [], **body, "request_id": rid}
    return JSONResponse(payload, status_code=status, headers={"X-Request-ID": rid})


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no such route, wrong method) as JSON."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    rid = _request_id(request)
    what = {404: "no such endpoint", 405: "method not allowed"}.get(status, "request failed")
    return _problem(
        status,
        {
            "error": f"{what}: {request.method} {request.url.path}",
            "why": str(getattr(exc, "detail", "")),
            "fix": "see /docs for the endpoints",
        },
        rid,
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    rid = _request_id(request)
    logger.error("unhandled error (request id %s)", rid, exc_info=exc)
    return _problem(
        500,
        {"error": "internal error", "fix": f"report it with request id {rid}"},
        rid,
    )
