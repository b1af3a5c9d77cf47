"""Building blocks the parts of the service's OpenAPI document share.

The native protocol's paths (:mod:`mlcycle.serve.http.openapi`), MLflow's
``/invocations`` (:mod:`mlcycle.serve.http.openapi_mlflow`) and the ``/docs`` page
(:mod:`mlcycle.serve.http.docs_page`) answer with the same error body, take the same
request-id header and show the same example row; each is spelled once, here.

Example:
    >>> ref_response("unknown model", "Error")["content"]["application/json"]["schema"]
    {'$ref': '#/components/schemas/Error'}
"""

from __future__ import annotations

from typing import Any

from mlcycle.serve.model import ModelRuntime

__all__ = ["example_record", "ref_response", "request_id_header"]


def ref_response(description: str, schema: str) -> dict[str, Any]:
    """A JSON response described by ``description`` whose body is ``components/schemas/<schema>``.

    Example:
        >>> ref_response("predictions", "PredictResponse")["description"]
        'predictions'
    """
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def request_id_header() -> dict[str, Any]:
    """The optional ``X-Request-ID`` header parameter every scoring route echoes.

    Example:
        >>> request_id_header()["in"]
        'header'
    """
    return {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "echoed in the response; generated when absent",
        "schema": {"type": "string"},
    }


def example_record(runtime: ModelRuntime) -> dict[str, Any]:
    """One valid input row for ``runtime``: each column's minimum, first category or a stand-in.

    Example:
        >>> example_record(runtime)
        {'distance': 17.0, 'carrier': 'AA', 'weekend': False}
    """
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
