"""Request bodies of the REST service: ``/predict`` shapes and Open Inference Protocol v2 tensors.

Every shape problem is an :class:`InputError` naming the field (HTTP 422) or
an :class:`HTTPProblem` (HTTP 400 for JSON that does not parse).

Example:
    >>> records = predict_records(runtime, orjson.loads(body))
    >>> frame = runtime.validate_records(records)
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import orjson

from mlcycle.serve.model import InputError, ModelRuntime

PLATFORM = "mlcycle-sklearn"

DATATYPE_OF_KIND = {
    "numeric": "FP64",
    "boolean": "BOOL",
    "categorical": "BYTES",
    "string": "BYTES",
    "datetime": "BYTES",
}
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOATS = {"FP16", "FP32", "FP64"}
DATATYPES = _INTS | _FLOATS | {"BOOL", "BYTES"}
_ACCEPTED_DATATYPES = {
    "numeric": _INTS | _FLOATS,
    "boolean": _INTS | {"BOOL"},
    "categorical": _INTS | {"BYTES"},
    "string": _INTS | {"BYTES"},
    "datetime": {"BYTES"},
}


class HTTPProblem(Exception):
    """A request problem with its HTTP status, raised inside the service."""

    def __init__(
        self,
        status: int,
        what: str,
        why: str = "",
        fix: str = "",
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(what)
        self.status = status
        self.body: dict[str, Any] = {
            "error": what,
            "why": why,
            "fix": fix,
            "details": details or [],
        }


# --- request parsing ----------------------------------------------------------------


def loads_json(body: bytes) -> Any:
    """A request body parsed as JSON; :class:`HTTPProblem` (400) when it is not JSON.

    Example:
        >>> loads_json(b'[{"distance": 700}]')
        [{'distance': 700}]
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(
            400,
            "request body is not valid JSON",
            str(exc) if body else "the body is empty",
            "send a JSON document (Content-Type: application/json)",
        ) from None


def shape_error(where: str, problem: str, fix: str) -> InputError:
    return InputError([{"field": where, "error": problem}], what="malformed request", fix=fix)


_PREDICT_FIX = (
    'send a list of records [{"col": value, ...}], {"records": [...]}, '
    'or {"columns": [...], "data": [[...], ...]}'
)


def predict_records(runtime: ModelRuntime, payload: Any) -> list[dict[str, Any]]:
    """Turn a ``/predict`` body into a list of records (not yet checked against the contract).

    Accepts a list of records, ``{"records": [...]}``, ``{"columns": [...],
    "data": [[...], ...]}`` or a single record object.

    Example:
        >>> predict_records(runtime, {"columns": ["distance"], "data": [[700]]})
        [{'distance': 700}]
    """
    if isinstance(payload, list):
        return record_list(runtime, payload, "body")
    if not isinstance(payload, dict):
        raise shape_error(
            "body", f"expected a list or an object, got {kind_of(payload)}", _PREDICT_FIX
        )
    if "records" in payload:
        records = payload["records"]
        if not isinstance(records, list):
            raise shape_error("records", f"expected a list, got {kind_of(records)}", _PREDICT_FIX)
        return record_list(runtime, records, "records")
    if "columns" in payload or "data" in payload:
        return columnar_records(runtime, payload)
    if "inputs" in payload:
        raise shape_error(
            "inputs",
            "this looks like an Open Inference Protocol request",
            f"POST it to /v2/models/{runtime.meta.name}/infer",
        )
    if any(name in payload for name in runtime.features):
        # One record on its own, the way people type it into curl.
        return record_list(runtime, [payload], "body")
    raise shape_error(
        "body",
        f"the object has none of the keys records, columns/data or a feature name "
        f"(got keys: {', '.join(sorted(map(str, payload))[:8]) or 'none'})",
        _PREDICT_FIX,
    )


def record_list(
    runtime: ModelRuntime, records: list[Any], where: str, fix: str = _PREDICT_FIX
) -> list[dict[str, Any]]:
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise shape_error(
                f"{where}[{i}]", f"each record must be an object, got {kind_of(record)}", fix
            )
    return records


def columnar_records(
    runtime: ModelRuntime, payload: dict[str, Any], prefix: str = ""
) -> list[dict[str, Any]]:
    """``{"columns": [...], "data": [[...]]}``; ``prefix`` places the fields in the body."""
    columns, data = payload.get("columns"), payload.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise shape_error(f"{prefix}columns", "expected a list of column names", _PREDICT_FIX)
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        raise shape_error(
            f"{prefix}columns",
            f"duplicate column name(s): {', '.join(dupes)}",
            "name each column once",
        )
    if not isinstance(data, list):
        raise shape_error(
            f"{prefix}data", f"expected a list of rows, got {kind_of(data)}", _PREDICT_FIX
        )
    width = len(columns)
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else kind_of(row)
            raise shape_error(
                f"{prefix}data[{i}]",
                f"expected a list of {width} values (one per column), got {got}",
                "give every row one value per name in columns, in the same order",
            )
    return [dict(zip(columns, row, strict=True)) for row in data]


def parse_predict_body(runtime: ModelRuntime, payload: Any) -> Any:
    """A ``/predict`` body as the model's checked input frame (the generic path).

    Example:
        >>> parse_predict_body(runtime, [good_record]).shape
        (1, 7)
    """
    return runtime.validate_records(predict_records(runtime, payload))


def infer_records(columns: dict[str, list[Any]], rows: int) -> list[dict[str, Any]]:
    """Open Inference Protocol columns as records, for the compiled path.

    Example:
        >>> infer_records({"distance": [700, 300]}, 2)
        [{'distance': 700}, {'distance': 300}]
    """
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def parse_infer_body(
    runtime: ModelRuntime, payload: Any
) -> tuple[dict[str, list[Any]], int, set[str] | None]:
    """Check an Open Inference Protocol v2 request: (columns, rows, requested outputs).

    ``columns`` holds the model's features and, when sent, the bundle's id
    column (for the prediction log's ``row_id``); other inputs are ignored.

    Example:
        >>> parse_infer_body(runtime, {"inputs": [{"name": "distance", "shape": [1],
        ...                                        "datatype": "FP64", "data": [700]}, ...]})
        ({'distance': [700], ...}, 1, None)
    """
    if not isinstance(payload, dict):
        raise shape_error("body", f"expected an object, got {kind_of(payload)}", _INFER_FIX)
    if "id" in payload and not isinstance(payload["id"], str | None):
        raise shape_error("id", f"expected a string, got {kind_of(payload['id'])}", _INFER_FIX)
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise shape_error("inputs", "expected a non-empty list of input tensors", _INFER_FIX)
    kinds = {c.name: c.kind for c in runtime.input_schema.columns}
    columns: dict[str, list[Any]] = {}
    lengths: dict[str, int] = {}
    for i, tensor in enumerate(inputs):
        name, datatype, data = _tensor(i, tensor, lengths)
        lengths[name] = len(data)
        kind = kinds.get(name)
        if kind is None:
            if name == runtime.meta.id_column:
                columns[name] = data  # not a feature, but the log's row id
            continue  # not a feature: ignored, like an extra column
        if datatype not in _ACCEPTED_DATATYPES[kind]:
            raise shape_error(
                name,
                f"datatype {datatype} does not fit a {kind} column",
                f"send it as {DATATYPE_OF_KIND[kind]}",
            )
        columns[name] = data
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k}: {v}" for k, v in lengths.items())
        raise InputError(
            [{"field": k, "error": f"{v} value(s)"} for k, v in lengths.items()],
            what="inputs have different lengths",
            why=f"every input is one column of the same rows ({sizes})",
            fix="send the same number of values for every input",
        )
    rows = next(iter(lengths.values()))
    return columns, rows, _wanted_outputs(runtime, payload.get("outputs"))


_INFER_FIX = (
    'send {"inputs": [{"name": col, "shape": [n], "datatype": "FP64", "data": [...]}, ...]}'
)


def _tensor(i: int, tensor: Any, seen: dict[str, int]) -> tuple[str, str, list[Any]]:
    """One input tensor checked for shape: (name, datatype, its values as a flat list)."""
    if not isinstance(tensor, dict):
        raise shape_error(f"inputs[{i}]", f"expected an object, got {kind_of(tensor)}", _INFER_FIX)
    name = tensor.get("name")
    if not isinstance(name, str):
        raise shape_error(f"inputs[{i}].name", "missing or not a string", _INFER_FIX)
    if name in seen:
        raise shape_error(name, "input given more than once", "send each input once")
    datatype, shape, data = tensor.get("datatype"), tensor.get("shape"), tensor.get("data")
    if datatype not in DATATYPES:
        raise shape_error(
            name,
            f"unknown datatype {datatype!r}",
            f"use one of: {', '.join(sorted(DATATYPES))}",
        )
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise shape_error(
            name,
            f"shape must be [n] or [n, 1], got {short_value(shape)}",
            "send one tensor per column",
        )
    if not isinstance(data, list):
        raise shape_error(name, f"data must be a list, got {kind_of(data)}", _INFER_FIX)
    if data and all(isinstance(v, list) for v in data):
        # Row-major nested form [[v0], [v1], ...] of a [n, 1] tensor.
        if not all(len(v) == 1 for v in data):
            raise shape_error(
                name, "nested data rows must hold one value each", "send one tensor per column"
            )
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise shape_error(
            name,
            f"shape says {shape[0]} value(s) but data has {len(data)}",
            "make shape[0] equal the number of values",
        )
    return name, datatype, data


def _wanted_outputs(runtime: ModelRuntime, requested: Any) -> set[str] | None:
    """The output names a request asked for (``None``: all of them)."""
    if requested is None:
        return None
    known = {"predictions", "warnings"} | ({"probabilities"} if runtime.is_classifier else set())
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise shape_error("outputs", 'expected a list of {"name": ...} objects', _INFER_FIX)
    wanted = {o["name"] for o in requested}
    unknown = wanted - known
    if unknown:
        raise shape_error(
            "outputs",
            f"unknown output(s): {', '.join(sorted(unknown))}",
            f"ask for: {', '.join(sorted(known))}",
        )
    return wanted


class RecordsDecoder:
    """Parses logged request bodies of one model and protocol back into their records.

    The prediction log keeps a compiled-path request's body instead of its
    parsed records (cheaper for the request) and asks this for the records
    of the rows its encoded matrix cannot tell. Same functions as the request
    path, so the same records. ``protocol`` is ``"predict"`` or ``"infer"``;
    :class:`~mlcycle.serve.http.parsing_mlflow.InvocationsDecoder` reads
    MLflow's ``/invocations`` bodies.

    Example:
        >>> RecordsDecoder(runtime, "predict").decode(b'[{"distance": 700, ...}]')
        [{'distance': 700, ...}]
    """

    def __init__(self, runtime: ModelRuntime, protocol: str) -> None:
        self.runtime = runtime
        self.protocol = protocol

    def decode(self, body: bytes) -> list[dict[str, Any]]:
        """One body's records."""
        payload = orjson.loads(body)
        if self.protocol == "infer":
            columns, rows, _ = parse_infer_body(self.runtime, payload)
            return infer_records(columns, rows)
        return predict_records(self.runtime, payload)

    def decode_all(self, bodies: list[bytes]) -> list[dict[str, Any]]:
        """Every body's records, in order. ``/predict`` bodies that are lists of records (the
        usual shape) are parsed in one orjson call over the joined bodies."""
        if self.protocol == "predict":
            payloads = orjson.loads(b"[" + b",".join(bodies) + b"]")
            if set(map(type, payloads)) == {list}:
                return list(chain.from_iterable(payloads))  # the request path accepted them
        return list(chain.from_iterable(map(self.decode, bodies)))


def kind_of(value: Any) -> str:
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def short_value(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 40 else text[:37] + "..."


def prediction_datatype(runtime: ModelRuntime) -> str:
    """The Open Inference Protocol datatype of the ``predictions`` output.

    Example:
        >>> prediction_datatype(runtime)   # a binary classifier with labels False/True
        'BOOL'
    """
    if not runtime.is_classifier or runtime.classes is None:
        return "FP64"
    labels = runtime.classes
    if all(isinstance(c, bool) for c in labels):
        return "BOOL"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in labels):
        return "INT64"
    if all(isinstance(c, float) for c in labels):
        return "FP64"
    return "BYTES"


def model_metadata(runtime: ModelRuntime) -> dict[str, Any]:
    """Open Inference Protocol model metadata, plus mlcycle details under ``parameters``.

    Example:
        >>> model_metadata(runtime)["platform"]
        'mlcycle-sklearn'
    """
    outputs: list[dict[str, Any]] = [
        {"name": "predictions", "datatype": prediction_datatype(runtime), "shape": [-1]}
    ]
    if runtime.is_classifier:
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(runtime.classes or [])]}
        )
    return {
        "name": runtime.meta.name,
        "versions": [] if runtime.version is None else [str(runtime.version)],
        "platform": PLATFORM,
        "inputs": [
            {"name": c.name, "datatype": DATATYPE_OF_KIND[c.kind], "shape": [-1]}
            for c in runtime.input_schema.columns
        ],
        "outputs": outputs,
        "parameters": {
            "task": runtime.meta.task,
            "target": runtime.meta.target,
            "classes": runtime.classes,
            "positive_label": runtime.positive_label,
            "unseen_category": runtime.meta.unseen_category,
            "out_of_range": runtime.out_of_range,
            "seasonal": list(runtime.meta.seasonal),
            "ranges": {
                name: [None if math.isinf(low) else low, None if math.isinf(high) else high]
                for name, (low, high) in runtime.ranges.items()
            },
            "columns": [
                c.model_dump(include={"name", "kind", "nullable", "categories"})
                for c in runtime.input_schema.columns
            ],
        },
    }
