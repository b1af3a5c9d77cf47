"""MLflow's scoring protocol: ``POST /invocations``, ``GET /ping``, ``/health`` and ``/version``.

An MLflow user's client (``requests`` against ``mlflow models serve``,
``mlflow.pyfunc``'s scoring-server client, a SageMaker-style health probe)
works unchanged: the body is JSON with exactly one of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (plus optional
``params``), or ``text/csv``; the answer is ``{"predictions": [...]}`` shaped
as MLflow's pyfunc server shapes a scikit-learn model's output: the labels,
one per row (what ``predict`` returns). ``params.predict_fn`` (or
``?predict_fn=``) ``"predict_proba"`` answers the class probabilities
instead, one list per row in ``classes`` order (what MLflow serves for a model
logged with ``pyfunc_predict_fn="predict_proba"``), with ``classes`` beside
them. The rows go through the same path as ``/predict``
(:meth:`Service.score`): the same contract checks, out-of-range policy,
prediction log, metrics and shadow scoring. Errors carry MLflow's
``error_code`` and ``message`` besides mlcycle's ``error``/``why``/``fix``.

Example:
    $ curl -s localhost:8000/invocations -H 'Content-Type: application/json' \\
    >   -d '{"dataframe_split": {"columns": ["dep_delay", ...], "data": [[5, ...]]}}'
    {"predictions": [false]}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mlcycle.serve.http.parsing import HTTPProblem
from mlcycle.serve.http.parsing_mlflow import (
    csv_records,
    invocation_predict_fn,
    invocation_records,
    loads_mlflow_json,
)
from mlcycle.serve.http.responses import JSONResponse, is_json_type
from mlcycle.serve.http.service import Handler, Service
from mlcycle.version import __version__

# MLflow's error codes (mlflow.protos.databricks_pb2.ErrorCode) by HTTP status.
_ERROR_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    500: "INTERNAL_ERROR",
}


def routes(service: Service) -> list[Route]:
    """``/invocations`` (guarded like ``/predict``) and the public ``/ping``, ``/health``,
    ``/version``, each wrapped by :meth:`Service.endpoint`.

    Example:
        >>> Starlette(routes=routes(service))
    """
    w = service.endpoint
    scoring = mlflow_errors(w(invocations, "/invocations", "predict"))
    return [
        Route("/invocations", scoring, methods=["POST"]),
        Route("/ping", w(ping, "/ping"), methods=["GET"]),
        Route("/health", w(ping, "/health"), methods=["GET"]),
        Route("/version", w(version, "/version"), methods=["GET"]),
    ]


async def invocations(service: Service, request: Request, rid: str) -> Response:
    """Score an MLflow scoring request (JSON or CSV)."""
    deployment = service.swapper.deployment
    served, role = deployment.pick()
    runtime = served.runtime
    is_csv = body_is_csv(request)  # before reading: a body of another type is not parsed
    body = await service.read_body(request)
    query = request.query_params.get("predict_fn") if request.scope["query_string"] else None

    def parse() -> tuple[list[dict[str, Any]], str]:
        params = None
        if is_csv:
            records = csv_records(runtime, body)
        else:
            records, params = invocation_records(runtime, loads_mlflow_json(body))
        return records, invocation_predict_fn(runtime, params, query)

    records, predict_fn = await service.off_loop(len(body), parse)
    labels, proba, logged, warnings = await service.score(
        served, role, rid, records, body, "invocations"
    )
    out: dict[str, Any] = {"predictions": labels}
    if predict_fn == "predict_proba":
        out["predictions"] = np.ascontiguousarray(proba)  # orjson writes C-ordered arrays
        out["classes"] = runtime.classes
    if warnings is not None:
        out["warnings"] = warnings  # only when a number is outside its range (flag policy)
    service.after(deployment, role, rid, records, logged)
    version = "" if runtime.version is None else str(runtime.version)
    return JSONResponse(
        out, headers={"X-Model-Name": runtime.meta.name, "X-Model-Version": version}
    )


async def ping(service: Service, request: Request, rid: str) -> Response:
    """MLflow's health check: 200 once the model is loaded (a worker listens only then)."""
    return JSONResponse({"status": "ok"})


async def version(service: Service, request: Request, rid: str) -> Response:
    """The server's version as plain text, as MLflow's ``/version`` answers (mlcycle's here)."""
    return PlainTextResponse(__version__)


def body_is_csv(request: Request) -> bool:
    """``True`` for ``text/csv`` (or ``application/csv``), ``False`` for JSON; else 415.

    A charset other than UTF-8, or another parameter (MLflow 1.x's
    ``format=pandas-split``), is refused as MLflow 2 refuses it.

    Example:
        >>> body_is_csv(request)  # Content-Type: text/csv; charset=utf-8
        True
    """
    given = b""
    for key, value in request.scope["headers"]:
        if key == b"content-type":
            given = value
            break
    if given == b"application/json":  # what every JSON client sends: one compare
        return False
    mime, _, rest = given.decode("latin-1").partition(";")
    mime = mime.strip().lower()
    params = {
        k.strip().lower(): v.strip().strip('"').lower()
        for k, _, v in (p.partition("=") for p in rest.split(";"))
        if k.strip()
    }
    fix = "send 'Content-Type: application/json' or 'Content-Type: text/csv'"
    if params.get("charset", "utf-8") != "utf-8":
        raise HTTPProblem(
            415, f"unsupported charset {params['charset']!r}", "bodies are read as UTF-8", fix
        )
    extra = sorted(set(params) - {"charset"})
    if extra:
        raise HTTPProblem(
            415,
            f"unsupported content type parameter(s): {', '.join(extra)}",
            "MLflow 2 dropped format=pandas-split/pandas-records: the format is a key of "
            "the JSON body now",
            'send Content-Type: application/json with {"dataframe_split": ...} or '
            '{"dataframe_records": ...}',
        )
    if mime in ("text/csv", "application/csv"):
        return True
    if is_json_type(mime.encode("latin-1")):
        return False
    shown = given.decode("latin-1")[:80]
    raise HTTPProblem(
        415,
        f"unsupported content type {shown!r}" if given else "no content type",
        "/invocations takes JSON or CSV, as MLflow's scoring server does",
        fix,
    )


def mlflow_errors(handler: Handler) -> Handler:
    """``handler`` with MLflow's ``error_code`` and ``message`` added to every error body.

    MLflow's clients raise on any status other than 200 and show the body;
    tools that parse MLflow errors read ``error_code`` and ``message``. The
    body keeps mlcycle's ``error``/``why``/``fix``/``details``/``request_id``.
    Only error responses are rewritten: a 200 pays nothing.

    Example:
        >>> Route("/invocations", mlflow_errors(service.endpoint(invocations, "/invocations")))
    """

    async def wrapped(request: Request) -> Response:
        response = await handler(request)
        status = response.status_code
        if status < 400:
            return response
        body = orjson.loads(bytes(response.body))
        parts = [body.get("error"), body.get("why"), body.get("fix")]
        body["error_code"] = _ERROR_CODES.get(status, "BAD_REQUEST")
        body["message"] = " — ".join(str(p) for p in parts if p)
        rewritten = JSONResponse(body, status_code=status)
        for name, value in response.headers.items():
            if name not in ("content-length", "content-type"):
                rewritten.headers[name] = value
        return rewritten

    return wrapped
