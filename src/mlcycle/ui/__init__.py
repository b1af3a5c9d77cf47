"""`mlcycle ui`: the web dashboard — runs, models, lineage, data and monitoring.

Server-rendered HTML (Jinja2 templates in ``templates/``, one stylesheet in
``static/``), served by Starlette and uvicorn from the project's own store;
no CDN, no script needed to read a page. Pages read through
:mod:`mlcycle.ui.readers`; every route declares a scope
(:mod:`mlcycle.ui.security`).

Example:
    >>> from mlcycle.pipeline.project import Project
    >>> from mlcycle.ui import AccessPolicy, create_app
    >>> app = create_app(Project.load("mlcycle.yaml"), AccessPolicy())
"""

from mlcycle.ui.app import create_app, route_scope
from mlcycle.ui.security import AccessPolicy, check_binding

__all__ = ["AccessPolicy", "check_binding", "create_app", "route_scope"]
