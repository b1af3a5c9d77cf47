"""``POST /predict``: a list of records or ``{"columns": [...], "data": [[...]]}``.

Answers predictions, probabilities (with ``classes``), the model version and
the request id; ``warnings`` (one list per row, empty for a row in range) only
when a number lies outside its training range under the flag policy.

Example:
    $ curl -s localhost:8000/predict -H 'Content-Type: application/json' \\
    >   -d '[{"dep_delay": 5, "distance": 700, ...}]'
    {"model": "flights", "model_version": 3, "request_id": "...", "predictions": [false], ...}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle.serve.http.parsing import loads_json, predict_records
from mlcycle.serve.http.responses import JSONResponse, require_json
from mlcycle.serve.http.service import Service


def routes(service: Service) -> list[Route]:
    """The ``/predict`` route, wrapped by :meth:`Service.endpoint`.

    Example:
        >>> Starlette(routes=routes(service))
    """
    return [Route("/predict", service.endpoint(predict, "/predict", "predict"), methods=["POST"])]


async def predict(service: Service, request: Request, rid: str) -> Response:
    """Score the records of a ``/predict`` body."""
    deployment = service.swapper.deployment
    served, role = deployment.pick()
    runtime = served.runtime
    require_json(request)  # before reading: a body of another type is not parsed at all
    body = await service.read_body(request)
    size = len(body)
    payload = await service.off_loop(size, lambda: loads_json(body))
    records = predict_records(runtime, payload)
    labels, proba, logged, warnings = await service.score(
        served, role, rid, records, body, "predict"
    )
    out: dict[str, Any] = {
        "model": runtime.meta.name,
        "model_version": runtime.version,
        "request_id": rid,
        "predictions": labels,
    }
    if proba is not None:
        out["probabilities"] = np.ascontiguousarray(proba)
        out["classes"] = runtime.classes
    if warnings is not None:
        out["warnings"] = warnings
    service.after(deployment, role, rid, records, logged)
    return JSONResponse(out)
