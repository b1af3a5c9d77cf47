"""Open Inference Protocol v2 routes: server and model metadata, health, readiness and ``infer``.

Named columnar inputs (one tensor per feature) so KServe, Triton and MLServer
clients work unchanged; the response carries ``predictions`` and, for
classifiers, ``probabilities`` (``parameters.classes`` gives their order).
When a number lies outside its training range (flag policy) it also carries a
``warnings`` output (``BYTES``, one JSON text per row: ``[]`` for a row in
range) and ``parameters.out_of_range_rows``; a request in range looks as before.

Example:
    $ curl -s localhost:8000/v2/models/flights/infer -d '{"inputs": [{"name": "distance",
        "shape": [1], "datatype": "FP64", "data": [700]}, ...]}'
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle.serve.http.parsing import (
    infer_records,
    loads_json,
    model_metadata,
    parse_infer_body,
    prediction_datatype,
)
from mlcycle.serve.http.responses import JSONResponse, require_json
from mlcycle.serve.http.service import Service
from mlcycle.version import __version__


def routes(service: Service) -> list[Route]:
    """The v2 routes, each wrapped by :meth:`Service.endpoint`.

    Example:
        >>> Starlette(routes=routes(service))
    """
    model = "/v2/models/{name}"
    version = model + "/versions/{version}"
    w = service.endpoint
    return [
        Route("/v2", w(server_metadata, "/v2"), methods=["GET"]),
        Route("/v2/health/live", w(live, "/v2/health/live"), methods=["GET"]),
        Route("/v2/health/ready", w(ready, "/v2/health/ready"), methods=["GET"]),
        Route(model, w(metadata, model), methods=["GET"]),
        Route(version, w(metadata, version), methods=["GET"]),
        Route(model + "/ready", w(model_ready, model + "/ready"), methods=["GET"]),
        Route(version + "/ready", w(model_ready, version + "/ready"), methods=["GET"]),
        Route(model + "/infer", w(infer, model + "/infer", "predict"), methods=["POST"]),
        Route(version + "/infer", w(infer, version + "/infer", "predict"), methods=["POST"]),
    ]


async def server_metadata(service: Service, request: Request, rid: str) -> Response:
    """Server metadata: name, version, extensions (OIP ``GET /v2``)."""
    return JSONResponse({"name": "mlcycle", "version": __version__, "extensions": []})


async def live(service: Service, request: Request, rid: str) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"live": True})


async def ready(service: Service, request: Request, rid: str) -> Response:
    """Readiness: a worker listens only once its model is loaded, so always ready."""
    return JSONResponse({"ready": True})


async def model_ready(service: Service, request: Request, rid: str) -> Response:
    """The served model's readiness (404 for another name or version)."""
    runtime = service.champion
    service.check_model(request, runtime)
    return JSONResponse({"name": runtime.meta.name, "ready": True})


async def metadata(service: Service, request: Request, rid: str) -> Response:
    """Model metadata: inputs, outputs, versions and mlcycle details."""
    runtime = service.champion
    service.check_model(request, runtime)
    return JSONResponse(model_metadata(runtime))


async def infer(service: Service, request: Request, rid: str) -> Response:
    """Score an Open Inference Protocol v2 request (named input tensors)."""
    deployment = service.swapper.deployment
    service.check_model(request, deployment.champion.runtime)
    served, role = deployment.pick()
    runtime = served.runtime
    require_json(request)  # before reading: a body of another type is not parsed at all
    body = await service.read_body(request)
    size = len(body)

    def parse() -> tuple[list[dict[str, Any]], set[str] | None, Any]:
        payload = loads_json(body)
        columns, rows, wanted = parse_infer_body(runtime, payload)
        if rows == 0:
            runtime.validate_columns(columns, 0)  # the empty-batch error
        return infer_records(columns, rows), wanted, payload.get("id")

    records, wanted, request_id = await service.off_loop(size, parse)
    labels, proba, logged, warnings = await service.score(served, role, rid, records, body, "infer")
    rows = len(labels)
    outputs: list[dict[str, Any]] = [
        {
            "name": "predictions",
            "shape": [rows],
            "datatype": prediction_datatype(runtime),
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
    parameters: dict[str, Any] = {"request_id": rid}
    if warnings is not None:
        # A v2 tensor of text, one JSON list per row: any OIP client can carry it.
        outputs.append(
            {
                "name": "warnings",
                "shape": [rows],
                "datatype": "BYTES",
                "data": [orjson.dumps(w).decode() for w in warnings],
            }
        )
        parameters["out_of_range_rows"] = sum(1 for w in warnings if w)
    if wanted is not None:
        outputs = [o for o in outputs if o["name"] in wanted]
    service.after(deployment, role, rid, records, logged)
    return JSONResponse(
        {
            "model_name": runtime.meta.name,
            "model_version": None if runtime.version is None else str(runtime.version),
            "id": request_id if request_id is not None else rid,
            "parameters": parameters,
            "outputs": outputs,
        }
    )
