"""``POST /predict``: a list of records or ``{"columns": [...], "data": [[...]]}``.

Answers predictions, probabilities (with ``classes``), the model version and
the request id.

Example:
    $ curl -s localhost:8000/predict -d '[{"dep_delay": 5, "distance": 700, ...}]'
    {"model": "flights", "model_version": 3, "request_id": "...", "predictions": [false], ...}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlcycle.serve.parsing import _loads, predict_records
from mlcycle.serve.responses import JSONResponse
from mlcycle.serve.service import Service


def routes(service: Service) -> list[Route]:
    """The ``/predict`` route, wrapped by :meth:`Service.endpoint`."""
    return [Route("/predict", service.endpoint(predict, "/predict", "predict"), methods=["POST"])]


async def predict(service: Service, request: Request, rid: str) -> Response:
    deployment = service.swapper.deployment
    served, role = deployment.pick()
    runtime = served.runtime
    body = await service.read_body(request)
    size = len(body)
    payload = await service.off_loop(size, lambda: _loads(body))
    records = predict_records(runtime, payload)
    labels, proba, inputs = await service.score(served, records, size, body, "predict")
    out: dict[str, Any] = {
        "model": runtime.meta.name,
        "model_version": runtime.version,
        "request_id": rid,
        "predictions": labels,
    }
    if proba is not None:
        out["probabilities"] = np.ascontiguousarray(proba)
        out["classes"] = runtime.classes
    service.after(deployment, served, role, rid, records, inputs, (labels, proba))
    return JSONResponse(out)
