"""The service's OpenAPI 3.1 document and its self-contained ``/docs`` page (no CDN).

Example:
    >>> doc = openapi_document(runtime)
    >>> sorted(doc["paths"])[:2]
    ['/admin/reload', '/admin/traffic']
"""

from __future__ import annotations

import html
import math
from typing import Any

import orjson

from mlcycle.serve.http.parsing import DATATYPE_OF_KIND, DATATYPES
from mlcycle.serve.http.parsing_mlflow import MLFLOW_FORMATS
from mlcycle.serve.model import ModelRuntime

# --- OpenAPI and /docs --------------------------------------------------------------


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
        "paths": {**_prediction_paths(runtime), **_operation_paths(), **_mlflow_paths()},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Record": _record_schema(runtime),
                **_request_schemas(),
                **_response_schemas(runtime),
                "Error": _error_schema(),
                **_mlflow_schemas(runtime),
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
        "400": _ref_response("malformed JSON", "Error"),
        "401": _ref_response(
            "missing or wrong bearer token (when a predict token is set)", "Error"
        ),
        "413": _ref_response("body over the size limit", "Error"),
        "415": _ref_response("Content-Type is not application/json", "Error"),
        "422": _ref_response("input breaks the data contract (details name the fields)", "Error"),
        "500": _ref_response("internal error (with request id)", "Error"),
    }


def _prediction_paths(runtime: ModelRuntime) -> dict[str, Any]:
    """The routes that depend on the model: predict, infer, metadata, readiness."""
    model_path = f"/v2/models/{runtime.meta.name}"
    example = _example_record(runtime)
    problems = _problems()
    return {
        "/predict": {
            "post": {
                "summary": "Predict rows given as records or columns",
                "parameters": [_request_id_header()],
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
                    "200": _ref_response("predictions", "PredictResponse"),
                    **problems,
                },
            }
        },
        "/invocations": _invocations_operation(runtime, example),
        f"{model_path}/infer": _infer_operation(
            "Open Inference Protocol v2 inference",
            [_request_id_header()],
            problems,
            _ref_response("unknown model", "Error"),
        ),
        model_path: {
            "get": {
                "summary": "Model metadata (inputs, outputs, versions)",
                "responses": {
                    "200": {"description": "metadata"},
                    "404": _ref_response("unknown model", "Error"),
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
    unknown = _ref_response("unknown model or version", "Error")
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
            [version, _request_id_header()],
            problems,
            unknown,
        ),
    }


def _admin_problems() -> dict[str, Any]:
    """What every admin route may answer besides 200 (auth.authorize decides 401/403)."""
    return {
        "401": _ref_response("missing or wrong bearer token", "Error"),
        "403": _ref_response("admin endpoints disabled (no admin token set)", "Error"),
        "500": _ref_response("internal error (with request id)", "Error"),
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
                    "422": _ref_response("nothing to reload (not serving an alias)", "Error"),
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
                    "400": _ref_response("malformed JSON", "Error"),
                    **_admin_problems(),
                    "413": _ref_response("body over the size limit", "Error"),
                    "422": _ref_response("invalid settings or no challenger", "Error"),
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


def _ref_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _request_id_header() -> dict[str, Any]:
    return {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": "echoed in the response; generated when absent",
        "schema": {"type": "string"},
    }


def _example_record(runtime: ModelRuntime) -> dict[str, Any]:
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


def docs_page(runtime: ModelRuntime) -> str:
    """A self-contained HTML page describing the endpoints and the inputs.

    Example:
        >>> docs_page(runtime).startswith("<!doctype html>")
        True
    """
    meta = runtime.meta
    e = html.escape
    outside = "refused with 422" if runtime.out_of_range == "reject" else "scored, with warnings"
    rows = "".join(
        f"<tr><td><code>{e(c.name)}</code></td><td>{e(c.kind)}</td>"
        f"<td>{'yes' if c.nullable else 'no'}</td>"
        f"<td>{e(', '.join(c.categories[:20])) if c.categories else ''}"
        f"{' …' if c.categories and len(c.categories) > 20 else ''}</td></tr>"
        for c in runtime.input_schema.columns
    )
    example = orjson.dumps([_example_record(runtime)]).decode()
    infer = orjson.dumps(
        {
            "inputs": [
                {"name": k, "shape": [1], "datatype": DATATYPE_OF_KIND[c.kind], "data": [v]}
                for (k, v), c in zip(
                    _example_record(runtime).items(), runtime.input_schema.columns, strict=True
                )
            ]
        }
    ).decode()
    invocation = orjson.dumps({"dataframe_records": [_example_record(runtime)]}).decode()
    doc = openapi_document(runtime)
    endpoints = "".join(
        f"<li><code>{e(method.upper())} {e(path)}</code> — {e(op.get('summary', ''))}</li>"
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    )
    version = runtime.version if runtime.version is not None else "unversioned"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(meta.name)} — mlcycle model API</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }}
code, pre {{ background: #f4f4f4; border-radius: 4px; }}
pre {{ padding: .8rem; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .25rem .6rem; }}
</style></head><body>
<h1>Model <code>{e(meta.name)}</code> <small>version {e(str(version))}</small></h1>
<p>{e(meta.task)} model predicting <code>{e(meta.target)}</code>.
Unseen categories: <b>{e(meta.unseen_category)}</b>.
Numbers outside the training range: <b>{e(runtime.out_of_range)}</b>
({e(outside)}).
Machine-readable description: <a href="/openapi.json">/openapi.json</a>.</p>
<h2>Endpoints</h2><ul>{endpoints}</ul>
<h2>Inputs</h2>
<table><tr><th>column</th><th>kind</th><th>nullable</th><th>categories</th></tr>{rows}</table>
<h2>Examples</h2>
<pre>curl -s localhost:8000/predict -H 'Content-Type: application/json' \\
  -d '{e(example)}'</pre>
<pre>curl -s localhost:8000/invocations -H 'Content-Type: application/json' \\
  -d '{e(invocation)}'</pre>
<pre>curl -s localhost:8000/v2/models/{e(meta.name)}/infer -H 'Content-Type: application/json' \\
  -d '{e(infer)}'</pre>
<p>Errors are JSON: <code>{{"error", "why", "fix", "details": [{{"field", "error"}}],
"request_id"}}</code> with status 400 (bad JSON), 404, 413 (too large), 415 (not
<code>Content-Type: application/json</code>) or 422 (bad input).</p>
</body></html>
"""


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
                "200": _ref_response("output tensors", "InferResponse"),
                "404": not_found,
                **problems,
            },
        }
    }


# --- MLflow's scoring protocol ------------------------------------------------------


def _invocations_operation(runtime: ModelRuntime, example: dict[str, Any]) -> dict[str, Any]:
    """``POST /invocations``: what ``routes_invocations.py`` accepts and answers."""
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
            "parameters": [_request_id_header(), predict_fn],
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
                "200": _ref_response("predictions", "InvocationsResponse"),
                "400": _ref_response("malformed JSON or CSV", error),
                "401": _ref_response(
                    "missing or wrong bearer token (when a predict token is set)", error
                ),
                "413": _ref_response("body over the size limit", error),
                "415": _ref_response("Content-Type is neither JSON nor CSV", error),
                "422": _ref_response(
                    "input breaks the data contract or the protocol (details name the fields)",
                    error,
                ),
                "500": _ref_response("internal error (with request id)", error),
            },
        }
    }


def _mlflow_paths() -> dict[str, Any]:
    """MLflow's scoring server's health and version routes."""
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


def _mlflow_schemas(runtime: ModelRuntime) -> dict[str, Any]:
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
