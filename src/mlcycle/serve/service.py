"""The service behind the routes: shared state and the plumbing every route goes through.

Clean JSON records take the compiled path (``serve/fastpath.py``: no pandas,
ONNX Runtime when the bundle carries a checked export); anything unusual
takes the generic path, which names every bad field. The models being served
form a :class:`~mlcycle.serve.deploy.Deployment` (champion, optional
challenger, canary share, shadow flag) that is replaced atomically: a request
keeps the deployment it started with, so a swap fails no request.

Example:
    >>> labels, proba, inputs = await service.score(served, records, len(body))
    >>> service.after(deployment, served, "champion", rid, records, inputs, (labels, proba))
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from mlcycle.errors import BadInput, NotFound
from mlcycle.serve.deploy import Deployment, Served, Swapper
from mlcycle.serve.metrics import Metrics
from mlcycle.serve.parsing import HTTPProblem
from mlcycle.serve.predlog import EncodedRows, LogEntry, PredictionLog, RawRecords, now
from mlcycle.serve.responses import problem, read_body, request_id
from mlcycle.serve.runtime import InputError, ModelRuntime

logger = logging.getLogger("mlcycle.serve")

# Bodies above this size are parsed and checked in a worker thread so a big
# batch does not stall health checks and small requests.
_INLINE_BODY_BYTES = 64_000
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]
RouteFn = Callable[["Service", Request, str], Awaitable[Response]]


class Service:
    """What every route shares: the deployment, metrics, the prediction log and the plumbing.

    :meth:`endpoint` wraps a route handler ``fn(service, request, request_id)``
    with the request id, the token check, errors as JSON, metrics and the
    request log; the handlers live in ``routes_v2.py``, ``routes_predict.py``
    and ``routes_admin.py``.

    Example:
        >>> service = Service(swapper, metrics=Metrics(), max_body_bytes=10_000_000, ...)
        >>> Route("/predict", service.endpoint(predict, "/predict", "predict"))
    """

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
        self.docs_cache: dict[int, tuple[bytes, str]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def champion(self) -> ModelRuntime:
        return self.swapper.deployment.champion.runtime

    # --- plumbing -------------------------------------------------------------------

    def endpoint(self, fn: RouteFn, route: str, guard: str = "") -> Handler:
        """Wrap a handler: request id, token check, errors as JSON, metrics, request log."""

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            rid = request_id(request)
            metrics = self.metrics
            metrics.in_flight += 1
            try:
                self._authorize(request, guard)
                response = await fn(self, request, rid)
            except HTTPProblem as exc:
                response = problem(exc.status, exc.body, rid)
            except InputError as exc:
                response = problem(422, exc.to_dict(), rid)
            except NotFound as exc:
                response = problem(404, exc.to_dict(), rid)
            except BadInput as exc:
                response = problem(422, exc.to_dict(), rid)
            except ClientDisconnect:
                response = problem(400, {"error": "client disconnected"}, rid)
            except Exception:
                logger.exception(
                    "request %s %s failed (request id %s)", request.method, request.url.path, rid
                )
                response = problem(
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

    async def read_body(self, request: Request) -> bytes:
        return await read_body(request, self.max_body_bytes)

    async def off_loop(self, size: int, fn: Callable[[], T]) -> T:
        if size > _INLINE_BODY_BYTES:
            return await run_in_threadpool(fn)
        return fn()

    def check_model(self, request: Request, runtime: ModelRuntime) -> None:
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

    async def score(
        self, served: Served, records: list[dict[str, Any]], size: int, body: bytes, protocol: str
    ) -> tuple[list[Any], Any, Any]:
        """(labels, probabilities, inputs to log) for records, on the fastest path they allow.

        Records the compiled path accepts are logged from their encoded
        matrix (with the request ``body`` for what it cannot tell:
        :class:`RawRecords`, see ``serve/logbuffer.py``); the generic path logs
        its validated frame.
        """
        rt = served.runtime
        logging = self.log is not None

        def prepare() -> tuple[Any, Any]:
            matrix = rt.encode_records(records)
            if matrix is not None:
                return matrix, RawRecords(body, rt, protocol, matrix) if logging else None
            frame = rt.validate_records(records)
            if rt.plan is not None:
                return rt.plan.encode_frame(frame), frame
            return frame, frame

        item, inputs = await self.off_loop(size, prepare)
        labels, proba = await served.batcher.predict(item)
        return labels, proba, inputs

    def log_rows(
        self, served: Served, role: str, rid: str, records: Any, inputs: Any, out: Any
    ) -> None:
        log = self.log
        if log is None:
            return
        labels, proba = out
        id_column = served.runtime.meta.id_column
        row_ids = None
        if id_column and type(records) is list:
            row_ids = [r.get(id_column) for r in records]  # rows without one get rid:index
            if row_ids.count(None) == len(row_ids):
                row_ids = None
        if type(inputs) is RawRecords:  # the compiled path: appended as columns
            log.submit_encoded(served.info, role, rid, inputs, labels, proba, row_ids)
            return
        log.submit(LogEntry(served.info, role, rid, now(), inputs, row_ids, labels, proba, True))

    def _shadow(self, deployment: Deployment, rid: str, records: list[dict[str, Any]]) -> None:
        challenger = deployment.challenger
        if challenger is None:
            return
        try:
            rt = challenger.runtime
            matrix = rt.encode_records(records)
            inputs: Any = None if matrix is None else EncodedRows(records, matrix)
            if matrix is None:
                inputs = rt.validate_records(records)
                out = rt.predict_arrays(inputs)
            else:
                out = rt.predict_matrix(matrix)
        except Exception as exc:
            self.metrics.shadow_errors += 1
            logger.debug("shadow prediction failed for %s: %s", rid, exc)
            return
        self.log_rows(challenger, "shadow", rid, records, inputs, out)

    def keep(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def after(
        self,
        deployment: Deployment,
        served: Served,
        role: str,
        rid: str,
        records: list[dict[str, Any]],
        inputs: Any,
        out: Any,
    ) -> None:
        self.log_rows(served, role, rid, records, inputs, out)
        if deployment.shadow and role == "champion" and deployment.challenger is not None:
            self.keep(run_in_threadpool(self._shadow, deployment, rid, records))
