"""The REST service: Open Inference Protocol v2 plus a plain ``/predict``.

Built on Starlette directly (FastAPI is not a dependency); the OpenAPI
document is written by hand from the model's schema, and ``/docs`` is a small
self-contained HTML page (no CDN).

Every input problem is a 4xx JSON body ``{"error", "why", "fix", "details",
"request_id"}``; anything else is a 500 JSON body with the request id, and the
traceback goes to the log, never to the client.

Example:
    >>> runtime = ModelRuntime.load(Path("bundle"), version=3)
    >>> uvicorn.run(create_app(runtime), host="127.0.0.1", port=8000)
    $ curl -s localhost:8000/predict -d '[{"dep_delay": 5, "distance": 700, ...}]'
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mlcycle import __version__
from mlcycle.errors import BadInput, NotFound
from mlcycle.serve.runtime import InputError, ModelRuntime

logger = logging.getLogger("mlcycle.serve")

PLATFORM = "mlcycle-sklearn"
# Bodies above this size are parsed and checked in a worker thread so a big
# batch does not stall health checks and small requests.
_INLINE_BODY_BYTES = 64_000
# Requests are predicted together up to this many rows (see _MicroBatcher).
_BATCH_MAX_ROWS = 2048
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_DATATYPE_OF_KIND = {
    "numeric": "FP64",
    "boolean": "BOOL",
    "categorical": "BYTES",
    "string": "BYTES",
    "datetime": "BYTES",
}
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOATS = {"FP16", "FP32", "FP64"}
_DATATYPES = _INTS | _FLOATS | {"BOOL", "BYTES"}
_ACCEPTED_DATATYPES = {
    "numeric": _INTS | _FLOATS,
    "boolean": _INTS | {"BOOL"},
    "categorical": _INTS | {"BYTES"},
    "string": _INTS | {"BYTES"},
    "datetime": {"BYTES"},
}

Handler = Callable[[Request], Awaitable[Response]]
Prediction = tuple[list[Any], np.ndarray | None]
T = TypeVar("T")


class JSONResponse(Response):
    """A JSON response encoded by orjson; NaN and infinities become ``null``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(
            content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str
        )


class HTTPProblem(Exception):
    """A request problem with its HTTP status, raised inside the service."""

    def __init__(
        self,
        status: int,
        what: str,
        why: str = "",
        fix: str = "",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(what)
        self.status = status
        self.body: dict[str, Any] = {
            "error": what,
            "why": why,
            "fix": fix,
            "details": details or [],
        }


def create_app(
    runtime: ModelRuntime, *, max_body_bytes: int = 10_000_000, request_log: bool = False
) -> Starlette:
    """The ASGI app serving ``runtime``.

    Routes: ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready``,
    ``/v2/models/{name}[/versions/{v}]`` (metadata), ``.../ready``,
    ``POST .../infer`` (Open Inference Protocol v2), ``POST /predict``
    (records or ``{"columns", "data"}``), ``GET /openapi.json``, ``GET /docs``.

    Example:
        >>> app = create_app(ModelRuntime.load(Path("bundle"), version=1), request_log=True)
        >>> uvicorn.run(app, port=8000)
    """
    service = _Service(runtime, max_body_bytes=max_body_bytes, request_log=request_log)
    if request_log:
        _ensure_request_log_visible()
    model = "/v2/models/{name}"
    version = model + "/versions/{version}"
    wrap = service.endpoint
    routes = [
        Route("/v2", wrap(service.server_metadata), methods=["GET"]),
        Route("/v2/health/live", wrap(service.live), methods=["GET"]),
        Route("/v2/health/ready", wrap(service.ready), methods=["GET"]),
        Route(model, wrap(service.model_metadata), methods=["GET"]),
        Route(version, wrap(service.model_metadata), methods=["GET"]),
        Route(model + "/ready", wrap(service.model_ready), methods=["GET"]),
        Route(version + "/ready", wrap(service.model_ready), methods=["GET"]),
        Route(model + "/infer", wrap(service.infer), methods=["POST"]),
        Route(version + "/infer", wrap(service.infer), methods=["POST"]),
        Route("/predict", wrap(service.predict), methods=["POST"]),
        Route("/openapi.json", wrap(service.openapi), methods=["GET"]),
        Route("/docs", wrap(service.docs), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _unhandled},
    )
    app.state.runtime = runtime
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
    def __init__(self, runtime: ModelRuntime, *, max_body_bytes: int, request_log: bool) -> None:
        if max_body_bytes <= 0:
            raise BadInput(
                f"max_body_bytes must be positive, got {max_body_bytes}",
                "it caps the size of a request body",
                "set serve.max_body_bytes to a positive number of bytes",
            )
        self.runtime = runtime
        self.name = runtime.meta.name
        self.version = None if runtime.version is None else str(runtime.version)
        self.max_body_bytes = max_body_bytes
        self.request_log = request_log
        self.batcher = _MicroBatcher(runtime)
        self._openapi = orjson.dumps(openapi_document(runtime))
        self._docs = docs_page(runtime)

    # --- plumbing -------------------------------------------------------------------

    def endpoint(self, fn: Callable[[Request, str], Awaitable[Response]]) -> Handler:
        """Wrap a handler: request id, errors as JSON, optional request log."""

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            rid = _request_id(request)
            try:
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
            response.headers["X-Request-ID"] = rid
            if self.request_log:
                logger.info(
                    "%s %s %d %.1fms request_id=%s model=%s version=%s",
                    request.method,
                    request.url.path,
                    response.status_code,
                    (time.perf_counter() - started) * 1e3,
                    rid,
                    self.name,
                    self.version,
                )
            return response

        return handler

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

    async def _parse(self, body: bytes, parse: Callable[[], T]) -> T:
        if len(body) > _INLINE_BODY_BYTES:
            return await run_in_threadpool(parse)
        return parse()

    def _check_model(self, request: Request) -> None:
        name = request.path_params.get("name")
        version = request.path_params.get("version")
        if name != self.name:
            raise HTTPProblem(
                404,
                f"model '{name}' not found",
                f"this server serves model '{self.name}'",
                f"use /v2/models/{self.name}",
            )
        if version is not None and version != self.version:
            raise HTTPProblem(
                404,
                f"version '{version}' of model '{name}' not found",
                f"this server serves version {self.version or '(unversioned)'}",
                f"use /v2/models/{self.name} without a version",
            )

    # --- routes ---------------------------------------------------------------------

    async def server_metadata(self, request: Request, rid: str) -> Response:
        return JSONResponse({"name": "mlcycle", "version": __version__, "extensions": []})

    async def live(self, request: Request, rid: str) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request, rid: str) -> Response:
        return JSONResponse({"ready": True})

    async def model_ready(self, request: Request, rid: str) -> Response:
        self._check_model(request)
        return JSONResponse({"name": self.name, "ready": True})

    async def model_metadata(self, request: Request, rid: str) -> Response:
        self._check_model(request)
        return JSONResponse(model_metadata(self.runtime))

    async def openapi(self, request: Request, rid: str) -> Response:
        return Response(self._openapi, media_type="application/json")

    async def docs(self, request: Request, rid: str) -> Response:
        return HTMLResponse(self._docs)

    async def predict(self, request: Request, rid: str) -> Response:
        body = await self._body(request)
        frame = await self._parse(body, lambda: parse_predict_body(self.runtime, _loads(body)))
        labels, proba = await self.batcher.predict(frame)
        out: dict[str, Any] = {
            "model": self.name,
            "model_version": self.runtime.version,
            "request_id": rid,
            "predictions": labels,
        }
        if proba is not None:
            out["probabilities"] = proba.tolist()
            out["classes"] = self.runtime.classes
        return JSONResponse(out)

    async def infer(self, request: Request, rid: str) -> Response:
        self._check_model(request)
        body = await self._body(request)

        def parse() -> tuple[pd.DataFrame, set[str] | None, Any]:
            payload = _loads(body)
            columns, rows, wanted = parse_infer_body(self.runtime, payload)
            return self.runtime.validate_columns(columns, rows), wanted, payload.get("id")

        frame, wanted, request_id = await self._parse(body, parse)
        labels, proba = await self.batcher.predict(frame)
        rows = len(frame)
        outputs: list[dict[str, Any]] = [
            {
                "name": "predictions",
                "shape": [rows],
                "datatype": _prediction_datatype(self.runtime),
                "data": labels,
            }
        ]
        if proba is not None:
            outputs.append(
                {
                    "name": "probabilities",
                    "shape": [rows, proba.shape[1]],
                    "datatype": "FP64",
                    "data": proba.reshape(-1).tolist(),
                    "parameters": {"classes": self.runtime.classes},
                }
            )
        if wanted is not None:
            outputs = [o for o in outputs if o["name"] in wanted]
        return JSONResponse(
            {
                "model_name": self.name,
                "model_version": self.version,
                "id": request_id if request_id is not None else rid,
                "parameters": {"request_id": rid},
                "outputs": outputs,
            }
        )


class _MicroBatcher:
    """Predict concurrent small requests together, without making any of them wait.

    A prediction's cost is mostly fixed per call (a 1-row and a 100-row
    call of a scikit-learn pipeline take about the same time), so requests
    that arrive while a prediction runs are queued and then predicted in one
    call. A request arriving at an idle server starts at once: batching only
    happens under load, and adds no timer.
    """

    def __init__(self, runtime: ModelRuntime, max_rows: int = _BATCH_MAX_ROWS) -> None:
        self.runtime = runtime
        self.max_rows = max_rows
        self._queue: list[tuple[pd.DataFrame, asyncio.Future[Prediction]]] = []
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def predict(self, frame: pd.DataFrame) -> Prediction:
        if len(frame) >= self.max_rows:
            return await run_in_threadpool(self.runtime.predict_arrays, frame)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # The same app served from a new event loop (e.g. a test client).
            self._loop, self._queue, self._task = loop, [], None
        future: asyncio.Future[Prediction] = loop.create_future()
        self._queue.append((frame, future))
        # No await between the drain loop's last queue check and its end, so a
        # task that is not done is certain to see this request.
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take()
            frames = [frame for frame, _ in batch]
            try:
                labels, proba = await run_in_threadpool(self._predict_many, frames)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for frame, future in batch:
                end = start + len(frame)
                if not future.done():  # the client may have gone away
                    part = None if proba is None else proba[start:end]
                    future.set_result((labels[start:end], part))
                start = end

    def _take(self) -> list[tuple[pd.DataFrame, asyncio.Future[Prediction]]]:
        taken, rows = 0, 0
        for frame, _ in self._queue:
            if taken and rows + len(frame) > self.max_rows:
                break
            taken += 1
            rows += len(frame)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    def _predict_many(self, frames: list[pd.DataFrame]) -> Prediction:
        if len(frames) == 1:
            return self.runtime.predict_arrays(frames[0])
        return self.runtime.predict_arrays(_concat(frames))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack validated frames; a boolean column is bool in one and 0/1/NaN in another."""
    first = frames[0]
    mixed = [
        name for name in first.columns if len({str(frame[name].dtype) for frame in frames}) > 1
    ]
    if mixed:
        frames = [
            frame.astype({name: np.float64 for name in mixed if frame[name].dtype == bool})
            for frame in frames
        ]
    return pd.concat(frames, ignore_index=True)


# --- request parsing ----------------------------------------------------------------


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(
            400,
            "request body is not valid JSON",
            str(exc) if body else "the body is empty",
            "send a JSON document (Content-Type: application/json)",
        ) from None


def _shape_error(where: str, problem: str, fix: str) -> InputError:
    return InputError([{"field": where, "error": problem}], what="malformed request", fix=fix)


_PREDICT_FIX = (
    'send a list of records [{"col": value, ...}], {"records": [...]}, '
    'or {"columns": [...], "data": [[...], ...]}'
)


def parse_predict_body(runtime: ModelRuntime, payload: Any) -> pd.DataFrame:
    """Turn a ``/predict`` body into the model's checked input frame.

    Accepts a list of records, ``{"records": [...]}``, ``{"columns": [...],
    "data": [[...], ...]}`` or a single record object.
    """
    if isinstance(payload, list):
        return _records_frame(runtime, payload, "body")
    if not isinstance(payload, dict):
        raise _shape_error(
            "body", f"expected a list or an object, got {_kind(payload)}", _PREDICT_FIX
        )
    if "records" in payload:
        records = payload["records"]
        if not isinstance(records, list):
            raise _shape_error("records", f"expected a list, got {_kind(records)}", _PREDICT_FIX)
        return _records_frame(runtime, records, "records")
    if "columns" in payload or "data" in payload:
        return _columnar_frame(runtime, payload)
    if "inputs" in payload:
        raise _shape_error(
            "inputs",
            "this looks like an Open Inference Protocol request",
            f"POST it to /v2/models/{runtime.meta.name}/infer",
        )
    if any(name in payload for name in runtime.features):
        # One record on its own, the way people type it into curl.
        return _records_frame(runtime, [payload], "body")
    raise _shape_error(
        "body",
        f"the object has none of the keys records, columns/data or a feature name "
        f"(got keys: {', '.join(sorted(map(str, payload))[:8]) or 'none'})",
        _PREDICT_FIX,
    )


def _records_frame(runtime: ModelRuntime, records: list[Any], where: str) -> pd.DataFrame:
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise _shape_error(
                f"{where}[{i}]",
                f"each record must be an object, got {_kind(record)}",
                _PREDICT_FIX,
            )
    return runtime.validate_records(records)


def _columnar_frame(runtime: ModelRuntime, payload: dict[str, Any]) -> pd.DataFrame:
    columns, data = payload.get("columns"), payload.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise _shape_error("columns", "expected a list of column names", _PREDICT_FIX)
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise _shape_error(
            "columns", f"duplicate column name(s): {', '.join(dupes)}", "name each column once"
        )
    if not isinstance(data, list):
        raise _shape_error("data", f"expected a list of rows, got {_kind(data)}", _PREDICT_FIX)
    width = len(columns)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else _kind(row)
            raise _shape_error(
                f"data[{i}]",
                f"expected a list of {width} values (one per column), got {got}",
                "give every row one value per name in columns, in the same order",
            )
    index = {name: j for j, name in enumerate(columns)}
    values = {
        name: [row[index[name]] for row in data] for name in runtime.features if name in index
    }
    return runtime.validate_columns(values, len(data))


def parse_infer_body(
    runtime: ModelRuntime, payload: Any
) -> tuple[dict[str, list[Any]], int, set[str] | None]:
    """Check an Open Inference Protocol v2 request: (columns, rows, requested outputs)."""
    fix = 'send {"inputs": [{"name": col, "shape": [n], "datatype": "FP64", "data": [...]}, ...]}'
    if not isinstance(payload, dict):
        raise _shape_error("body", f"expected an object, got {_kind(payload)}", fix)
    if "id" in payload and not isinstance(payload["id"], str | None):
        raise _shape_error("id", f"expected a string, got {_kind(payload['id'])}", fix)
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise _shape_error("inputs", "expected a non-empty list of input tensors", fix)
    kinds = {c.name: c.kind for c in runtime.input_schema.columns}
    columns: dict[str, list[Any]] = {}
    lengths: dict[str, int] = {}
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise _shape_error(f"inputs[{i}]", f"expected an object, got {_kind(tensor)}", fix)
        name = tensor.get("name")
        if not isinstance(name, str):
            raise _shape_error(f"inputs[{i}].name", "missing or not a string", fix)
        if name in lengths:
            raise _shape_error(name, "input given more than once", "send each input once")
        datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
        if datatype not in _DATATYPES:
            raise _shape_error(
                name,
                f"unknown datatype {datatype!r}",
                f"use one of: {', '.join(sorted(_DATATYPES))}",
            )
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or (len(shape) == 2 and shape[1] != 1)
        ):
            raise _shape_error(
                name,
                f"shape must be [n] or [n, 1], got {_short(shape)}",
                "send one tensor per column",
            )
        if not isinstance(data, list):
            raise _shape_error(name, f"data must be a list, got {_kind(data)}", fix)
        if data and all(isinstance(v, list) for v in data):
            # Row-major nested form [[v0], [v1], ...] of a [n, 1] tensor.
            if not all(len(v) == 1 for v in data):
                raise _shape_error(
                    name, "nested data rows must hold one value each", "send one tensor per column"
                )
            data = [v[0] for v in data]
        if len(data) != shape[0]:
            raise _shape_error(
                name,
                f"shape says {shape[0]} value(s) but data has {len(data)}",
                "make shape[0] equal the number of values",
            )
        lengths[name] = len(data)
        kind = kinds.get(name)
        if kind is None:
            continue  # not a feature: ignored, like an extra column
        if datatype not in _ACCEPTED_DATATYPES[kind]:
            raise _shape_error(
                name,
                f"datatype {datatype} does not fit a {kind} column",
                f"send it as {_DATATYPE_OF_KIND[kind]}",
            )
        columns[name] = data
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise InputError(
            [{"field": k, "error": f"{v} value(s)"} for k, v in lengths.items()],
            what="inputs have different lengths",
            why=f"every input is one column of the same rows ({sizes})",
            fix="send the same number of values for every input",
        )
    wanted: set[str] | None = None
    requested = payload.get("outputs")
    if requested is not None:
        known = {"predictions"} | ({"probabilities"} if runtime.is_classifier else set())
        if not isinstance(requested, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
        ):
            raise _shape_error("outputs", 'expected a list of {"name": ...} objects', fix)
        wanted = {o["name"] for o in requested}
        unknown = wanted - known
        if unknown:
            raise _shape_error(
                "outputs",
                f"unknown output(s): {', '.join(sorted(unknown))}",
                f"ask for: {', '.join(sorted(known))}",
            )
    rows = next(iter(lengths.values()))
    return columns, rows, wanted


def _kind(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 40 else text[:37] + "..."


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


def _prediction_datatype(runtime: ModelRuntime) -> str:
    if not runtime.is_classifier or runtime.classes is None:
        return "FP64"
    labels = runtime.classes
    if all(isinstance(c, bool) for c in labels):
        return "BOOL"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in labels):
        return "INT64"
    if all(isinstance(c, float) for c in labels):
        return "FP64"
    return "BYTES"


def model_metadata(runtime: ModelRuntime) -> dict[str, Any]:
    """Open Inference Protocol model metadata, plus mlcycle details under ``parameters``."""
    outputs: list[dict[str, Any]] = [
        {"name": "predictions", "datatype": _prediction_datatype(runtime), "shape": [-1]}
    ]
    if runtime.is_classifier:
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(runtime.classes or [])]}
        )
    return {
        "name": runtime.meta.name,
        "versions": [] if runtime.version is None else [str(runtime.version)],
        "platform": PLATFORM,
        "inputs": [
            {"name": c.name, "datatype": _DATATYPE_OF_KIND[c.kind], "shape": [-1]}
            for c in runtime.input_schema.columns
        ],
        "outputs": outputs,
        "parameters": {
            "task": runtime.meta.task,
            "target": runtime.meta.target,
            "classes": runtime.classes,
            "positive_label": runtime.positive_label,
            "unseen_category": runtime.meta.unseen_category,
            "columns": [
                c.model_dump(include={"name", "kind", "nullable", "categories"})
                for c in runtime.input_schema.columns
            ],
        },
    }


# --- OpenAPI and /docs --------------------------------------------------------------


def _json_type(
    kind: str, nullable: bool, categories: list[str] | None, strict: bool
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "numeric": {"type": "number"},
        "boolean": {"type": "boolean"},
        "datetime": {"type": "string", "format": "date-time"},
    }.get(kind, {"type": "string"})
    if categories is not None and strict:
        base["enum"] = list(categories)
    if nullable:
        base = {"anyOf": [base, {"type": "null"}]}
    return base


def openapi_document(runtime: ModelRuntime) -> dict[str, Any]:
    """A hand-written OpenAPI 3.1 document for this model's service."""
    meta = runtime.meta
    strict = meta.unseen_category == "reject"
    record = {
        "type": "object",
        "description": "one row; extra keys are ignored",
        "required": [c.name for c in runtime.input_schema.columns],
        "properties": {
            c.name: _json_type(c.kind, c.nullable, c.categories, strict)
            for c in runtime.input_schema.columns
        },
    }
    label: dict[str, Any] = (
        {"type": "number"} if not runtime.is_classifier else {"enum": runtime.classes}
    )
    error = {
        "type": "object",
        "required": ["error", "why", "fix", "details"],
        "properties": {
            "error": {"type": "string"},
            "why": {"type": "string"},
            "fix": {"type": "string"},
            "request_id": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": ["string", "null"]},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": sorted(_DATATYPES)},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    problems = {
        "400": _ref_response("malformed JSON", "Error"),
        "413": _ref_response("body over the size limit", "Error"),
        "422": _ref_response("input breaks the data contract (details name the fields)", "Error"),
        "500": _ref_response("internal error (with request id)", "Error"),
    }
    model_path = f"/v2/models/{meta.name}"
    example = _example_record(runtime)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mlcycle model '{meta.name}'",
            "version": str(runtime.version) if runtime.version is not None else "unversioned",
            "description": f"{meta.task} model predicting '{meta.target}'. "
            "Open Inference Protocol v2 plus a plain /predict endpoint.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict rows given as records or columns",
                    "parameters": [_request_id_header()],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/PredictRequest"},
                                "example": [example],
                            }
                        },
                    },
                    "responses": {
                        "200": _ref_response("predictions", "PredictResponse"),
                        **problems,
                    },
                }
            },
            f"{model_path}/infer": {
                "post": {
                    "summary": "Open Inference Protocol v2 inference",
                    "parameters": [_request_id_header()],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/InferRequest"}
                            }
                        },
                    },
                    "responses": {
                        "200": _ref_response("output tensors", "InferResponse"),
                        "404": _ref_response("unknown model", "Error"),
                        **problems,
                    },
                }
            },
            model_path: {
                "get": {
                    "summary": "Model metadata (inputs, outputs, versions)",
                    "responses": {
                        "200": {"description": "metadata"},
                        "404": _ref_response("unknown model", "Error"),
                    },
                }
            },
            f"{model_path}/ready": {
                "get": {
                    "summary": "Model readiness",
                    "responses": {"200": {"description": "ready"}},
                }
            },
            "/v2/health/live": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "live"}}}
            },
            "/v2/health/ready": {
                "get": {"summary": "Readiness", "responses": {"200": {"description": "ready"}}}
            },
            "/v2": {
                "get": {
                    "summary": "Server metadata",
                    "responses": {"200": {"description": "server name and version"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
            "/docs": {
                "get": {
                    "summary": "Human-readable API page",
                    "responses": {"200": {"description": "HTML"}},
                }
            },
        },
        "components": {
            "schemas": {
                "Record": record,
                "PredictRequest": {
                    "oneOf": [
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Record"},
                            "minItems": 1,
                        },
                        {
                            "type": "object",
                            "required": ["records"],
                            "properties": {
                                "records": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"$ref": "#/components/schemas/Record"},
                                }
                            },
                        },
                        {
                            "type": "object",
                            "required": ["columns", "data"],
                            "properties": {
                                "columns": {"type": "array", "items": {"type": "string"}},
                                "data": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"type": "array"},
                                },
                            },
                        },
                    ]
                },
                "PredictResponse": {
                    "type": "object",
                    "required": ["model", "model_version", "request_id", "predictions"],
                    "properties": {
                        "model": {"type": "string"},
                        "model_version": {"type": ["integer", "null"]},
                        "request_id": {"type": "string"},
                        "predictions": {"type": "array", "items": label},
                        "probabilities": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": ["number", "null"]}},
                        },
                        "classes": {"type": "array"},
                    },
                },
                "Tensor": tensor,
                "InferRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "inputs": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/Tensor"},
                        },
                        "outputs": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                        },
                        "parameters": {"type": "object"},
                    },
                },
                "InferResponse": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": ["string", "null"]},
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "outputs": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Tensor"},
                        },
                    },
                },
                "Error": error,
            }
        },
    }


def _ref_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _request_id_header() -> dict[str, Any]:
    return {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "echoed in the response; generated when absent",
        "schema": {"type": "string"},
    }


def _example_record(runtime: ModelRuntime) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for c in runtime.input_schema.columns:
        if c.kind == "numeric":
            row[c.name] = c.min if c.min is not None else 0
        elif c.kind == "boolean":
            row[c.name] = False
        elif c.kind == "datetime":
            row[c.name] = "2024-01-01T00:00:00"
        else:
            row[c.name] = c.categories[0] if c.categories else "text"
    return row


def docs_page(runtime: ModelRuntime) -> str:
    """A self-contained HTML page describing the endpoints and the inputs."""
    meta = runtime.meta
    e = html.escape
    rows = "".join(
        f"<tr><td><code>{e(c.name)}</code></td><td>{e(c.kind)}</td>"
        f"<td>{'yes' if c.nullable else 'no'}</td>"
        f"<td>{e(', '.join(c.categories[:20])) if c.categories else ''}"
        f"{' …' if c.categories and len(c.categories) > 20 else ''}</td></tr>"
        for c in runtime.input_schema.columns
    )
    example = orjson.dumps([_example_record(runtime)]).decode()
    infer = orjson.dumps(
        {
            "inputs": [
                {"name": k, "shape": [1], "datatype": _DATATYPE_OF_KIND[c.kind], "data": [v]}
                for (k, v), c in zip(
                    _example_record(runtime).items(), runtime.input_schema.columns, strict=True
                )
            ]
        }
    ).decode()
    doc = openapi_document(runtime)
    endpoints = "".join(
        f"<li><code>{e(method.upper())} {e(path)}</code> — {e(op.get('summary', ''))}</li>"
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    )
    version = runtime.version if runtime.version is not None else "unversioned"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(meta.name)} — mlcycle model API</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }}
code, pre {{ background: #f4f4f4; border-radius: 4px; }}
pre {{ padding: .8rem; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; }}
</style></head><body>
<h1>Model <code>{e(meta.name)}</code> <small>version {e(str(version))}</small></h1>
<p>{e(meta.task)} model predicting <code>{e(meta.target)}</code>.
Unseen categories: <b>{e(meta.unseen_category)}</b>.
Machine-readable description: <a href="/openapi.json">/openapi.json</a>.</p>
<h2>Endpoints</h2><ul>{endpoints}</ul>
<h2>Inputs</h2>
<table><tr><th>column</th><th>kind</th><th>nullable</th><th>categories</th></tr>{rows}</table>
<h2>Examples</h2>
<pre>curl -s localhost:8000/predict -H 'Content-Type: application/json' \\
  -d '{e(example)}'</pre>
<pre>curl -s localhost:8000/v2/models/{e(meta.name)}/infer -H 'Content-Type: application/json' \\
  -d '{e(infer)}'</pre>
<p>Errors are JSON: <code>{{"error", "why", "fix", "details": [{{"field", "error"}}],
"request_id"}}</code> with status 400 (bad JSON), 404, 413 (too large) or 422 (bad input).</p>
</body></html>
"""
