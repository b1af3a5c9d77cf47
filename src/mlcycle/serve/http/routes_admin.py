"""Operations routes: ``/metrics``, ``/openapi.json``, ``/docs`` and the admin endpoints.

``POST /admin/reload`` re-resolves the aliases now; ``GET|POST /admin/traffic``
reads or sets the canary share and the shadow flag. Admin routes need the
admin bearer token (they are off without one).

Example:
    $ curl -s -H "Authorization: Bearer $MLCYCLE_ADMIN_TOKEN" localhost:8000/admin/traffic \
        -d '{"canary": 0.1}'
"""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mlcycle.serve.http.docs_page import docs_page
from mlcycle.serve.http.openapi import openapi_document
from mlcycle.serve.http.parsing import HTTPProblem, loads_json
from mlcycle.serve.http.responses import JSONResponse
from mlcycle.serve.http.service import Service


def routes(service: Service) -> list[Route]:
    """The operations routes, each wrapped by :meth:`Service.endpoint`.

    Example:
        >>> Starlette(routes=routes(service))
    """
    w = service.endpoint
    return [
        Route("/metrics", w(metrics_text, "/metrics"), methods=["GET"]),
        Route("/admin/reload", w(reload, "/admin/reload", "admin"), methods=["POST"]),
        Route("/admin/traffic", w(traffic, "/admin/traffic", "admin"), methods=["GET", "POST"]),
        Route("/openapi.json", w(openapi, "/openapi.json"), methods=["GET"]),
        Route("/docs", w(docs, "/docs"), methods=["GET"]),
    ]


async def metrics_text(service: Service, request: Request, rid: str) -> Response:
    """Prometheus metrics, summed over the workers (see ``metrics.py``)."""
    versions = service.swapper.deployment.versions()
    text = service.metrics.render(versions, service.log)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def reload(service: Service, request: Request, rid: str) -> Response:
    """Resolve the aliases now and swap in whatever moved."""
    return JSONResponse(await run_in_threadpool(service.swapper.check))


async def traffic(service: Service, request: Request, rid: str) -> Response:
    """Read (GET) or set (POST) the canary share and the shadow flag."""
    if request.method == "GET":
        return JSONResponse(service.swapper.deployment.describe())
    body = loads_json(await service.read_body(request))
    current = service.swapper.deployment
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
    result = await run_in_threadpool(service.swapper.set_traffic, canary, shadow)
    return JSONResponse(result)


async def openapi(service: Service, request: Request, rid: str) -> Response:
    """The OpenAPI document of the served model (cached per model)."""
    return Response(_documents(service)[0], media_type="application/json")


async def docs(service: Service, request: Request, rid: str) -> Response:
    """The human-readable API page."""
    return HTMLResponse(_documents(service)[1])


def _documents(service: Service) -> tuple[bytes, str]:
    runtime = service.champion
    cached = service.docs_cache.get(id(runtime))
    if cached is None:
        cached = (orjson.dumps(openapi_document(runtime)), docs_page(runtime))
        service.docs_cache = {id(runtime): cached}
    return cached
