"""HTTP plumbing of the REST service: JSON responses, request ids, error bodies, body limits.

Every input problem is a 4xx JSON body ``{"error", "why", "fix", "details",
"request_id"}``; anything else is a 500 JSON body with the request id, and the
traceback goes to the log, never to the client.

Example:
    >>> problem(422, {"error": "missing input column(s): distance"}, "3f2a")
    <JSONResponse status_code=422>
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mlcycle.serve.http.parsing import HTTPProblem

logger = logging.getLogger("mlcycle.serve")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class JSONResponse(Response):
    """A JSON response encoded by orjson; NaN and infinities become ``null``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(
            content, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str
        )


def request_id(request: Request) -> str:
    """The client's ``X-Request-ID`` when it is a sane token, else a fresh one.

    Example:
        >>> request_id(request)  # the client's X-Request-ID, or a fresh hex id
        '3f2a9c...'
    """
    given = request.headers.get("x-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


def problem(status: int, body: dict[str, Any], rid: str) -> Response:
    """An error response in the service's one error shape.

    Example:
        >>> problem(422, {"error": "missing input column(s): distance"}, rid).status_code
        422
    """
    payload = {"error": "", "why": "", "fix": "", "details": [], **body, "request_id": rid}
    return JSONResponse(payload, status_code=status, headers={"X-Request-ID": rid})


JSON_TYPE = b"application/json"
_JSON_LEN = len(JSON_TYPE)


def is_json_type(value: bytes) -> bool:
    """True for ``application/json``, with parameters (``; charset=utf-8``) or in any case.

    Example:
        >>> is_json_type(b"application/json; charset=utf-8"), is_json_type(b"text/plain")
        (True, False)
    """
    if value == JSON_TYPE:  # what every client sends: one bytes compare on the hot path
        return True
    rest = value[_JSON_LEN:].lstrip(b" \t")
    return value[:_JSON_LEN].lower() == JSON_TYPE and (not rest or rest.startswith(b";"))


def require_json(request: Request) -> None:
    """Raise :class:`HTTPProblem` (415) unless the request says its body is JSON.

    A body of another type (or of none, e.g. ``curl -d``'s form encoding) is
    refused rather than guessed at: everything answered goes into the
    prediction log monitoring trusts. The raw ASGI header is compared, so the
    check costs nothing measurable.

    Example:
        >>> require_json(request)  # raises HTTPProblem(415) for text/plain
    """
    for key, value in request.scope["headers"]:
        if key == b"content-type":
            if is_json_type(value):
                return
            given = value.decode("latin-1")[:80]
            break
    else:
        given = ""
    raise HTTPProblem(
        415,
        f"unsupported content type {given!r}" if given else "no content type",
        f"{request.url.path} takes a JSON body (Content-Type: application/json)",
        "send the header 'Content-Type: application/json'",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 past ``limit`` bytes (declared or counted).

    Example:
        >>> body = await read_body(request, limit=10_000_000)
    """
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
        if size > limit:
            raise _too_large(size, limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        # Content-Length may be absent (chunked) or wrong: count what arrives.
        if total > limit:
            raise _too_large(total, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> HTTPProblem:
    return HTTPProblem(
        413,
        "request body too large",
        f"{size} bytes is over the limit of {limit} bytes",
        "split the batch into smaller requests, use `mlcycle predict` for files, "
        "or raise serve.max_body_bytes",
    )


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no such route, wrong method) as JSON.

    Example:
        >>> Starlette(exception_handlers={HTTPException: http_exception})
    """
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    rid = request_id(request)
    what = {404: "no such endpoint", 405: "method not allowed"}.get(status, "request failed")
    response = problem(
        status,
        {
            "error": f"{what}: {request.method} {request.url.path}",
            "why": str(getattr(exc, "detail", "")),
            "fix": "see /docs for the endpoints",
        },
        rid,
    )
    # Starlette's 405 carries the route's methods in an Allow header, which HTTP requires.
    for name, value in (getattr(exc, "headers", None) or {}).items():
        response.headers[name] = value
    return response


async def unhandled(request: Request, exc: Exception) -> Response:
    """Anything a route let through as a 500 JSON body with the request id; the traceback
    goes to the log.

    Example:
        >>> Starlette(exception_handlers={Exception: unhandled})
    """
    rid = request_id(request)
    logger.error("unhandled error (request id %s)", rid, exc_info=exc)
    return problem(
        500,
        {"error": "internal error", "fix": f"report it with request id {rid}"},
        rid,
    )
