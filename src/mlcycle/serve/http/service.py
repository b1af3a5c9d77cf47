"""The service behind the routes: shared state and the plumbing every route goes through.

Clean JSON records take the compiled path (``serve/model/fastpath.py``: no
pandas, ONNX Runtime when the bundle carries a checked export); anything
unusual takes the generic path, which names every bad field. The models being
served form a :class:`~mlcycle.serve.http.deploy.Deployment` (champion,
optional challenger, canary share, shadow flag) that is replaced atomically: a
request keeps the deployment it started with, so a swap fails no request.

Every scored request is logged as one :class:`~mlcycle.serve.predlog.LogRows`
built from what the request already decoded: the encoded matrix and the body
on the compiled path, the validated frame on the generic path.

Numbers outside their training range (under the flag policy) come back from
:meth:`Service.score` as warnings per row, and are counted per feature in
``/metrics``; a request in range gets ``None`` and pays one comparison per number.

Example:
    >>> labels, proba, logged, warnings = await service.score(
    ...     served, role, rid, records, body, "predict")
    >>> service.after(deployment, role, rid, records, logged)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from mlcycle.errors import BadInput, NotFound
from mlcycle.serve.http.auth import authorize
from mlcycle.serve.http.deploy import Deployment, Served, Swapper
from mlcycle.serve.http.metrics import Metrics
from mlcycle.serve.http.parsing import HTTPProblem
from mlcycle.serve.http.responses import problem, read_body, request_id
from mlcycle.serve.http.settings import ServeSettings
from mlcycle.serve.model import InputError, ModelRuntime
from mlcycle.serve.predlog import LogRows, PredictionLog, now

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
        >>> service = Service(swapper, settings=ServeSettings(), metrics=Metrics())
        >>> Route("/predict", service.endpoint(predict, "/predict", "predict"))
    """

    def __init__(
        self,
        swapper: Swapper,
        *,
        settings: ServeSettings,
        metrics: Metrics,
        prediction_log: PredictionLog | None = None,
    ) -> None:
        self.swapper = swapper
        self.settings = settings
        self.metrics = metrics
        self.log = prediction_log
        self.docs_cache: dict[int, tuple[bytes, str]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def champion(self) -> ModelRuntime:
        return self.swapper.deployment.champion.runtime

    # --- plumbing -------------------------------------------------------------------

    def endpoint(self, fn: RouteFn, route: str, guard: str = "") -> Handler:
        """Wrap a handler: request id, token check, errors as JSON, metrics, request log.

        Example:
            >>> Route("/predict", service.endpoint(predict, "/predict", "predict"))
        """

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            rid = request_id(request)
            metrics = self.metrics
            metrics.in_flight += 1
            try:
                if guard:
                    authorize(
                        request,
                        guard,
                        admin_token=self.settings.admin_token or None,
                        predict_token=self.settings.predict_token or None,
                    )
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
            if self.settings.request_log:
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

    async def read_body(self, request: Request) -> bytes:
        """The request body, refused past ``max_body_bytes`` (HTTP 413)."""
        return await read_body(request, self.settings.max_body_bytes)

    async def off_loop(self, size: int, fn: Callable[[], T]) -> T:
        """``fn()`` inline for a small body, in a worker thread for a big one."""
        if size > _INLINE_BODY_BYTES:
            return await run_in_threadpool(fn)
        return fn()

    def check_model(self, request: Request, runtime: ModelRuntime) -> None:
        """404 unless the path's model name (and version, if given) is what is served."""
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
        self,
        served: Served,
        role: str,
        rid: str,
        records: list[dict[str, Any]],
        body: bytes,
        protocol: str,
    ) -> tuple[list[Any], Any, LogRows | None, list[list[dict[str, Any]]] | None]:
        """(labels, probabilities, the rows to log, warnings) for records, on the fastest path.

        Records the compiled path accepts are logged from their encoded
        matrix, with the request ``body`` for what it cannot tell (see
        ``serve/predlog/buffer.py``); the generic path logs its validated frame.
        The rows to log are ``None`` without a prediction log. ``warnings`` is
        ``None`` when every number is inside its training range, else one list
        per row (empty for a row in range); each value outside is counted in
        ``mlcycle_out_of_range_total{column}``.
        """
        rt = served.runtime
        started = time.perf_counter()  # the log's latency_ms: this request's model time

        def prepare() -> tuple[Any, Any, list[Any]]:
            outside: list[Any] = []
            matrix = rt.encode_records(records, outside)
            if matrix is not None:
                return matrix, None, outside
            frame = rt.validate_records(records)  # under reject: a 422 for a value outside
            item = rt.plan.encode_frame(frame) if rt.plan is not None else frame
            return item, frame, rt.frame_outside(frame)

        item, frame, outside = await self.off_loop(len(body), prepare)
        labels, proba = await served.batcher.predict(item)
        latency_ms = (time.perf_counter() - started) * 1e3
        warnings = None
        if outside:  # the rare case: the in-range path pays nothing here
            warnings = rt.range_warnings(len(records), outside)
            self.metrics.count_out_of_range(name for _, name, _ in outside)
        if self.log is None:
            return labels, proba, None, warnings
        if frame is not None:
            logged = LogRows(
                served.info, role, rid, now(), labels, proba, _row_ids(served, records), True
            )
            logged.frame = frame
            logged.latency_ms = latency_ms
            return labels, proba, logged, warnings
        # The compiled path: one constructor call (this runs for every request).
        logged = LogRows(
            served.info,
            role,
            rid,
            now(),
            labels,
            proba,
            _row_ids(served, records),
            True,
            item,
            None,
            None,
            body,
            served.decoders[protocol],
            latency_ms,
        )
        return labels, proba, logged, warnings

    def _shadow(self, deployment: Deployment, rid: str, records: list[dict[str, Any]]) -> None:
        challenger = deployment.challenger
        if challenger is None:
            return
        started = time.perf_counter()  # the shadow's own model time, for its latency guardrail
        try:
            rt = challenger.runtime
            matrix = rt.encode_records(records)
            frame = None
            if matrix is None:
                frame = rt.validate_records(records)
                labels, proba = rt.predict_arrays(frame)
            else:
                labels, proba = rt.predict_matrix(matrix)
            latency_ms = (time.perf_counter() - started) * 1e3
        except Exception as exc:
            self.metrics.shadow_errors += 1
            logger.debug("shadow prediction failed for %s: %s", rid, exc)
            return
        if self.log is None:
            return
        logged = LogRows(
            challenger.info,
            "shadow",
            rid,
            now(),
            labels,
            proba,
            _row_ids(challenger, records),
            True,
        )
        logged.latency_ms = latency_ms
        if matrix is None:
            logged.frame = frame
        else:
            logged.matrix, logged.records = matrix, records
        self.log.submit(logged)

    def keep(self, coro: Any) -> None:
        """Run ``coro`` in the background, holding a reference until it is done.

        Example:
            >>> service.keep(run_in_threadpool(work))
        """
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def after(
        self,
        deployment: Deployment,
        role: str,
        rid: str,
        records: list[dict[str, Any]],
        logged: LogRows | None,
    ) -> None:
        """Once answered: log the rows, and have the challenger shadow a champion request.

        Example:
            >>> service.after(deployment, "champion", rid, records, logged)
        """
        if logged is not None and self.log is not None:
            self.log.submit(logged)
        if deployment.shadow and role == "champion" and deployment.challenger is not None:
            self.keep(run_in_threadpool(self._shadow, deployment, rid, records))


def _row_ids(served: Served, records: list[dict[str, Any]]) -> list[Any] | None:
    """Each record's own id (the bundle's id column), or ``None`` when no record has one."""
    id_column = served.runtime.meta.id_column
    if not id_column:
        return None
    row_ids = [r.get(id_column) for r in records]  # rows without one get rid:index
    return None if row_ids.count(None) == len(row_ids) else row_ids
