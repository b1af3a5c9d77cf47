"""The service's OpenAPI 3.1 document, and its native protocols' part.

:func:`openapi_document` assembles the document ``/openapi.json`` serves: the routes
written here (``/predict``, the Open Inference Protocol v2 routes, health, metrics,
admin, the docs themselves) and their schemas, plus MLflow's ``/invocations`` and
scoring-server routes from :mod:`mlcycle.serve.http.openapi_mlflow`. The ``/docs``
page that renders it is :mod:`mlcycle.serve.http.docs_page`.

Example:
    >>> doc = openapi_document(runtime)
    >>> sorted(doc["paths"])[:2]
    ['/admin/reload', '/admin/traffic']
"""

from __future__ import annotations

import math
from typing import Any

from mlcycle.serve.http.openapi_common import example_record, ref_response, request_id_header
from mlcycle.serve.http.openapi_mlflow import invocations_operation, mlflow_paths, mlflow_schemas
from mlcycle.serve.http.parsing import DATATYPES
from mlcycle.serve.model import ModelRuntime

__all__ = ["openapi_document"]


def _json_type(
    kind: str,
    nullable: bool,
    categories: list[str] | None,
    strict: bool,
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "numeric": {"type": "number"},
        "boolean": {"type": "boolean"},
        "datetime": {"type": "string", "format": "date-time"},
    }.get(kind, {"type": "string"})
    if categories is not None and strict:
        base["enum"] = list(categories)
    if bounds is not None:  # the out-of-range policy is reject: the range is the contract
        low, high = bounds
        if not math.isinf(low):
            base["minimum"] = low
        if not math.isinf(high):
            base["maximum"] = high
    if nullable:
        base = {"anyOf": [base, {"type": "null"}]}
    return base


def openapi_document(runtime: ModelRuntime) -> dict[str, Any]:
    """A hand-written OpenAPI 3.1 document for this model's service.

    Example:
        >>> sorted(openapi_document(runtime)["components"]["schemas"])[:2]
        ['Error', 'InferRequest']
    """
    meta = runtime.meta
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"mlcycle model '{meta.name}'",
            "version": str(runtime.version) if runtime.version is not None else "unversioned",
            "description": f"{meta.task} model predicting '{meta.target}'. "
            "Open Inference Protocol v2, a plain /predict endpoint and MLflow's scoring "
            "protocol (/invocations).",
        },
        "paths": {**_prediction_paths(runtime), **_operation_paths(), **mlflow_paths()},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Record": _record_schema(runtime),
                **_request_schemas(),
                **_response_schemas(runtime),
                "Error": _error_schema(),
                **mlflow_schemas(runtime),
            },
        },
    }


def _record_schema(runtime: ModelRuntime) -> dict[str, Any]:
    strict = runtime.meta.unseen_category == "reject"
    ranges = runtime.ranges if runtime.out_of_range == "reject" else {}
    return {
        "type": "object",
        "description": "one row; extra keys are ignored. A number outside its training range "
        f"is {'refused (422)' if ranges else 'scored with a warning'} "
        f"(out-of-range policy: {runtime.out_of_range})",
        "required": [c.name for c in runtime.input_schema.columns],
        "properties": {
            c.name: _json_type(c.kind, c.nullable, c.categories, strict, ranges.get(c.name))
            for c in runtime.input_schema.columns
        },
    }


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error", "why", "fix", "details"],
        "properties": {
            "error": {"type": "string"},
            "why": {"type": "string"},
            "fix": {"type": "string"},
            "request_id": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "field": {"type": ["string", "null"]},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    }


def _tensor_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            # What parse_infer_body accepts: [n] or [n, 1], n ≥ 0 (one column per tensor).
            "shape": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "prefixItems": [{"type": "integer", "minimum": 0}, {"const": 1}],
                "items": {"type": "integer", "minimum": 0},
            },
            "datatype": {"type": "string", "enum": sorted(DATATYPES)},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }


def _problems() -> dict[str, Any]:
    return {
        "400": ref_response("malformed JSON", "Error"),
        "401": ref_response("missing or wrong bearer token (when a predict token is set)", "Error"),
        "413": ref_response("body over the size limit", "Error"),
        "415": ref_response("Content-Type is not application/json", "Error"),
        "422": ref_response("input breaks the data contract (details name the fields)", "Error"),
        "500": ref_response("internal error (with request id)", "Error"),
    }


def _prediction_paths(runtime: ModelRuntime) -> dict[str, Any]:
    """The routes that depend on the model: predict, infer, metadata, readiness."""
    model_path = f"/v2/models/{runtime.meta.name}"
    example = example_record(runtime)
    problems = _problems()
    return {
        "/predict": {
            "post": {
                "summary": "Predict rows given as records or columns",
                "parameters": [request_id_header()],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PredictRequest"},
                            "example": [example],
                        }
                    },
                },
                "responses": {
                    "200": ref_response("predictions", "PredictResponse"),
                    **problems,
                },
            }
        },
        "/invocations": invocations_operation(runtime, example),
        f"{model_path}/infer": _infer_operation(
            "Open Inference Protocol v2 inference",
            [request_id_header()],
            problems,
            ref_response("unknown model", "Error"),
        ),
        model_path: {
            "get": {
                "summary": "Model metadata (inputs, outputs, versions)",
                "responses": {
                    "200": {"description": "metadata"},
                    "404": ref_response("unknown model", "Error"),
                },
            }
        },
        f"{model_path}/ready": {
            "get": {
                "summary": "Model readiness",
                "responses": {"200": {"description": "ready"}},
            }
        },
        **_version_paths(model_path, problems),
    }


def _version_paths(model_path: str, problems: dict[str, Any]) -> dict[str, Any]:
    """The same routes under ``/versions/{version}``: 404 unless it is the served version."""
    version = {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "the served version (see the model metadata); any other is 404",
        "schema": {"type": "string"},
    }
    unknown = ref_response("unknown model or version", "Error")
    path = f"{model_path}/versions/{{version}}"
    return {
        path: {
            "get": {
                "summary": "Model metadata of a given version",
                "parameters": [version],
                "responses": {"200": {"description": "metadata"}, "404": unknown},
            }
        },
        f"{path}/ready": {
            "get": {
                "summary": "Readiness of a given version",
                "parameters": [version],
                "responses": {"200": {"description": "ready"}, "404": unknown},
            }
        },
        f"{path}/infer": _infer_operation(
            "Open Inference Protocol v2 inference on a given version",
            [version, request_id_header()],
            problems,
            unknown,
        ),
    }


def _admin_problems() -> dict[str, Any]:
    """What every admin route may answer besides 200 (auth.authorize decides 401/403)."""
    return {
        "401": ref_response("missing or wrong bearer token", "Error"),
        "403": ref_response("admin endpoints disabled (no admin token set)", "Error"),
        "500": ref_response("internal error (with request id)", "Error"),
    }


def _operation_paths() -> dict[str, Any]:
    """The routes every service has: health, server metadata, metrics, admin, docs."""
    return {
        "/v2/health/live": {
            "get": {"summary": "Liveness", "responses": {"200": {"description": "live"}}}
        },
        "/v2/health/ready": {
            "get": {"summary": "Readiness", "responses": {"200": {"description": "ready"}}}
        },
        "/v2": {
            "get": {
                "summary": "Server metadata",
                "responses": {"200": {"description": "server name and version"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "responses": {"200": {"description": "metrics"}},
            }
        },
        "/admin/reload": {
            "post": {
                "summary": "Check the registry now and swap in a moved alias (bearer token)",
                "security": [{"bearer": []}],
                "responses": {
                    "200": {"description": "the deployment"},
                    **_admin_problems(),
                    "422": ref_response("nothing to reload (not serving an alias)", "Error"),
                },
            }
        },
        "/admin/traffic": {
            "get": {
                "summary": "Champion, challenger, canary share and shadow flag (bearer token)",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "the deployment"}, **_admin_problems()},
            },
            "post": {
                "summary": 'Set {"canary": 0..1, "shadow": bool} (bearer token)',
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/TrafficSettings"},
                            "example": {"canary": 0.1, "shadow": False},
                        }
                    },
                },
                "responses": {
                    "200": {"description": "the new deployment"},
                    "400": ref_response("malformed JSON", "Error"),
                    **_admin_problems(),
                    "413": ref_response("body over the size limit", "Error"),
                    "422": ref_response("invalid settings or no challenger", "Error"),
                },
            },
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        "/docs": {
            "get": {
                "summary": "Human-readable API page",
                "responses": {"200": {"description": "HTML"}},
            }
        },
    }


def _request_schemas() -> dict[str, Any]:
    return {
        "TrafficSettings": {
            "type": "object",
            "description": "omitted keys keep their current value",
            "additionalProperties": False,
            "properties": {
                "canary": {"type": "number", "minimum": 0, "maximum": 1},
                "shadow": {"type": "boolean"},
            },
        },
        "PredictRequest": {
            "oneOf": [
                {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Record"},
                    "minItems": 1,
                },
                {
                    "type": "object",
                    "required": ["records"],
                    "properties": {
                        "records": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"$ref": "#/components/schemas/Record"},
                        }
                    },
                },
                {
                    "type": "object",
                    "required": ["columns", "data"],
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "array"},
                        },
                    },
                },
            ]
        },
    }


def _response_schemas(runtime: ModelRuntime) -> dict[str, Any]:
    label: dict[str, Any] = (
        {"type": "number"} if not runtime.is_classifier else {"enum": runtime.classes}
    )
    return {
        "PredictResponse": {
            "type": "object",
            "required": ["model", "model_version", "request_id", "predictions"],
            "properties": {
                "model": {"type": "string"},
                "model_version": {"type": ["integer", "null"]},
                "request_id": {"type": "string"},
                "predictions": {"type": "array", "items": label},
                "probabilities": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": ["number", "null"]}},
                },
                "classes": {"type": "array"},
                "warnings": {
                    "description": "only when a number lies outside its training range "
                    "(out-of-range policy flag): one list per row, empty for a row in range",
                    "type": "array",
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
                },
            },
        },
        "Warning": {
            "type": "object",
            "required": ["column", "value", "message"],
            "properties": {
                "column": {"type": "string"},
                "value": {"type": "number"},
                "min": {"type": ["number", "null"]},
                "max": {"type": ["number", "null"]},
                "message": {"type": "string"},
            },
        },
        "Tensor": _tensor_schema(),
        "InferRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/components/schemas/Tensor"},
                },
                "outputs": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
                "parameters": {"type": "object"},
            },
        },
        "InferResponse": {
            "type": "object",
            "required": ["model_name", "outputs"],
            "description": "outputs: predictions, probabilities (classifiers) and, only when a "
            "number lies outside its training range (policy flag), warnings: a BYTES tensor "
            "of one JSON list of Warning objects per row ('[]' in range), with "
            "parameters.out_of_range_rows counting the rows flagged",
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": ["string", "null"]},
                "id": {"type": "string"},
                "parameters": {
                    "type": "object",
                    "properties": {
                        "request_id": {"type": "string"},
                        "out_of_range_rows": {"type": "integer", "minimum": 1},
                    },
                },
                "outputs": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Tensor"},
                },
            },
        },
    }


def _infer_operation(
    summary: str,
    parameters: list[dict[str, Any]],
    problems: dict[str, Any],
    not_found: dict[str, Any],
) -> dict[str, Any]:
    """The v2 infer operation, the same for the model and for one of its versions."""
    return {
        "post": {
            "summary": summary,
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}}
                },
            },
            "responses": {
                "200": ref_response("output tensors", "InferResponse"),
                "404": not_found,
                **problems,
            },
        }
    }
