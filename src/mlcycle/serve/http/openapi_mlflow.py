"""The MLflow scoring protocol's part of the service's OpenAPI document.

``POST /invocations`` (what :mod:`mlcycle.serve.http.routes_invocations` accepts and
answers: the four JSON forms, CSV, ``predict_fn``, MLflow's error codes), MLflow's
scoring server's ``/ping``, ``/health`` and ``/version``, and the schemas they name.
:func:`mlcycle.serve.http.openapi.openapi_document` puts them in the document.

Example:
    >>> sorted(mlflow_schemas(runtime))
    ['InvocationsRequest', 'InvocationsResponse', 'MlflowError']
"""

from __future__ import annotations

from typing import Any

from mlcycle.serve.http.openapi_common import ref_response, request_id_header
from mlcycle.serve.http.parsing_mlflow import MLFLOW_FORMATS
from mlcycle.serve.model import ModelRuntime

__all__ = ["invocations_operation", "mlflow_paths", "mlflow_schemas"]


def invocations_operation(runtime: ModelRuntime, example: dict[str, Any]) -> dict[str, Any]:
    """``POST /invocations``: what ``routes_invocations.py`` accepts and answers.

    ``example`` is the row shown in the request body's example (as ``dataframe_records``).

    Example:
        >>> invocations_operation(runtime, example_record(runtime))["post"]["responses"]["415"]
        {'description': 'Content-Type is neither JSON nor CSV', ...}
    """
    error = "MlflowError"
    predict_fn = {
        "name": "predict_fn",
        "in": "query",
        "required": False,
        "description": "predict (labels, the default) or predict_proba (class probabilities; "
        "classifiers only); the same as params.predict_fn, for CSV bodies",
        "schema": {"type": "string", "enum": _predict_fns(runtime)},
    }
    return {
        "post": {
            "summary": "Predict with MLflow's scoring protocol (mlflow models serve clients)",
            "description": "JSON with exactly one of dataframe_split, dataframe_records, "
            "instances or inputs (and optionally params), or CSV with a header line. "
            'Answers {"predictions": [...]}: the labels, or with predict_fn=predict_proba '
            "one list of class probabilities per row (in `classes` order). Errors carry "
            "MLflow's error_code and message.",
            "parameters": [request_id_header(), predict_fn],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/InvocationsRequest"},
                        "example": {"dataframe_records": [example]},
                    },
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "200": ref_response("predictions", "InvocationsResponse"),
                "400": ref_response("malformed JSON or CSV", error),
                "401": ref_response(
                    "missing or wrong bearer token (when a predict token is set)", error
                ),
                "413": ref_response("body over the size limit", error),
                "415": ref_response("Content-Type is neither JSON nor CSV", error),
                "422": ref_response(
                    "input breaks the data contract or the protocol (details name the fields)",
                    error,
                ),
                "500": ref_response("internal error (with request id)", error),
            },
        }
    }


def mlflow_paths() -> dict[str, Any]:
    """MLflow's scoring server's health and version routes.

    Example:
        >>> sorted(mlflow_paths())
        ['/health', '/ping', '/version']
    """
    return {
        "/ping": {
            "get": {
                "summary": "Health check (MLflow's scoring server)",
                "responses": {"200": {"description": "the model is loaded"}},
            }
        },
        "/health": {
            "get": {
                "summary": "Health check, same as /ping (MLflow's scoring server)",
                "responses": {"200": {"description": "the model is loaded"}},
            }
        },
        "/version": {
            "get": {
                "summary": "The server's (mlcycle's) version as plain text, like MLflow's /version",
                "responses": {
                    "200": {
                        "description": "version",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _predict_fns(runtime: ModelRuntime) -> list[str]:
    return ["predict", "predict_proba"] if runtime.is_classifier else ["predict"]


def mlflow_schemas(runtime: ModelRuntime) -> dict[str, Any]:
    """The components ``/invocations`` names: its request, its response and its error body.

    Example:
        >>> mlflow_schemas(runtime)["InvocationsRequest"]["oneOf"][0]
        {'required': ['dataframe_split']}
    """
    record = {"$ref": "#/components/schemas/Record"}
    rows = {"type": "array", "items": {"type": "array"}}
    columns = {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {"type": "array"},
    }
    tensor = {
        "description": "records, rows in the model's column order (see the v2 metadata "
        "inputs), or an object of columns",
        "anyOf": [
            {"type": "array", "items": record},
            rows,
            columns,
        ],
    }
    return {
        "InvocationsRequest": {
            "type": "object",
            "description": "exactly one of dataframe_split, dataframe_records, instances, "
            "inputs; any other key but params is refused",
            "additionalProperties": False,
            "oneOf": [{"required": [key]} for key in MLFLOW_FORMATS],
            "properties": {
                "dataframe_split": {
                    "type": "object",
                    "description": "pandas DataFrame.to_dict(orient='split'); without "
                    "columns, rows are in the model's column order; index is not used",
                    "required": ["data"],
                    "additionalProperties": False,
                    "properties": {
                        "columns": {"type": "array", "items": {"type": "string"}},
                        "data": rows,
                        "index": {"type": "array"},
                    },
                },
                "dataframe_records": {"type": "array", "items": record},
                "instances": tensor,
                "inputs": tensor,
                "params": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"predict_fn": {"type": "string", "enum": _predict_fns(runtime)}},
                },
            },
        },
        "InvocationsResponse": _invocations_response(runtime),
        "MlflowError": _mlflow_error(),
    }


def _invocations_response(runtime: ModelRuntime) -> dict[str, Any]:
    label: dict[str, Any] = (
        {"type": "number"} if not runtime.is_classifier else {"enum": runtime.classes}
    )
    return {
        "type": "object",
        "required": ["predictions"],
        "properties": {
            "predictions": {
                "description": "one label per row; with predict_fn=predict_proba one "
                "list of probabilities per row, in the order of classes",
                "type": "array",
                "items": {
                    "anyOf": [
                        label,
                        {"type": "array", "items": {"type": ["number", "null"]}},
                    ]
                },
            },
            "classes": {"type": "array", "description": "with predict_proba only"},
            "warnings": {
                "description": "only when a number lies outside its training range "
                "(out-of-range policy flag): one list per row, empty for a row in range",
                "type": "array",
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Warning"}},
            },
        },
    }


def _mlflow_error() -> dict[str, Any]:
    return {
        "description": "mlcycle's error body plus MLflow's error_code and message",
        "allOf": [
            {"$ref": "#/components/schemas/Error"},
            {
                "type": "object",
                "required": ["error_code", "message"],
                "properties": {
                    "error_code": {
                        "type": "string",
                        "enum": [
                            "BAD_REQUEST",
                            "UNAUTHENTICATED",
                            "PERMISSION_DENIED",
                            "RESOURCE_DOES_NOT_EXIST",
                            "INTERNAL_ERROR",
                        ],
                    },
                    "message": {"type": "string"},
                },
            },
        ],
    }
