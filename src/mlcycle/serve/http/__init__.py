"""The REST service: the ASGI app, its routes, OpenAPI, auth, metrics and the worker supervisor.

Public surface: :func:`create_app` (one :class:`ServeSettings` in, a Starlette
app out), :class:`ServeSettings` (and its environment form, for worker
processes), :func:`run_workers` (several processes on one port), and
:class:`JSONResponse`. The rest is how the app works inside: ``service.py``
(what every route shares), ``routes_*.py``, ``parsing.py`` and
``responses.py`` (bodies in and out), ``auth.py``, ``deploy.py`` (models
served, swapped without downtime), ``batching.py`` (micro-batching),
``metrics.py``, ``openapi.py`` (with ``openapi_mlflow.py`` and
``openapi_common.py``) and ``docs_page.py``.

Example:
    >>> app = create_app(ModelRuntime.load(Path("bundle"), version=3), ServeSettings())
    >>> uvicorn.run(app, port=8000)
"""

from mlcycle.serve.http.app import create_app
from mlcycle.serve.http.deploy import Resolver
from mlcycle.serve.http.responses import JSONResponse
from mlcycle.serve.http.settings import ServeSettings, check_bind
from mlcycle.serve.http.workers import run_workers

__all__ = [
    "JSONResponse",
    "Resolver",
    "ServeSettings",
    "check_bind",
    "create_app",
    "run_workers",
]
