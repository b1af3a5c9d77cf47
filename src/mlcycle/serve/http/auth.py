"""Bearer tokens of the REST service: admin routes need one, prediction routes may.

Every route declares a guard: ``""`` (public: health, metadata, docs),
``"predict"`` (needs the predict token when one is set) or ``"admin"``
(needs the admin token; off without one). Tokens are compared in constant time.

Example:
    >>> authorize(request, "admin", admin_token="adm", predict_token=None)  # raises HTTPProblem
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from mlcycle.serve.http.parsing import HTTPProblem


def authorize(
    request: Request, guard: str, *, admin_token: str | None, predict_token: str | None
) -> None:
    """Raise :class:`HTTPProblem` (401/403) unless ``request`` may pass ``guard``.

    Example:
        >>> authorize(request, "predict", admin_token=None, predict_token=None)  # open
    """
    if not guard:
        return
    token = admin_token if guard == "admin" else predict_token
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
        raise HTTPProblem(
            401,
            "missing or wrong bearer token",
            f"{'admin' if guard == 'admin' else 'prediction'} endpoints need "
            "'Authorization: Bearer <token>'",
            "send the token the server was started with",
        )
