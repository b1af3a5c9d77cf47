"""MLflow's scoring protocol: ``POST /invocations`` bodies as records.

MLflow's pyfunc server takes a JSON object with exactly one of
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (plus
``params``), or a CSV body. These functions turn each into the same records
``/predict`` scores, so the contract checks, the log and the metrics are the
ones every route shares; :mod:`~mlcycle.serve.http.parsing` holds the
native protocols and the shape errors all of them raise.

Example:
    >>> invocation_records(runtime, {"dataframe_records": [{"distance": 700}]})
    ([{'distance': 700}], None)
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import orjson

from mlcycle.serve.http.parsing import (
    HTTPProblem,
    RecordsDecoder,
    columnar_records,
    kind_of,
    loads_json,
    record_list,
    shape_error,
    short_value,
)
from mlcycle.serve.model import InputError, ModelRuntime

# The four ways MLflow 2+ wraps a JSON scoring request (mlflow.pyfunc.scoring_server).
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
# What a request may ask for in params.predict_fn / ?predict_fn= (named like MLflow's
# pyfunc_predict_fn): the labels, or the probabilities of each class.
PREDICT_FNS = ("predict", "predict_proba")
_FIX_RECORDS = 'send {"dataframe_records": [{"col": value, ...}, ...]}'
_INVOCATIONS_FIX = (
    'send {"dataframe_split": {"columns": [...], "data": [[...]]}}, '
    '{"dataframe_records": [{...}]}, {"instances": [...]} or {"inputs": ...}'
)


def loads_mlflow_json(body: bytes) -> Any:
    """An ``/invocations`` JSON body; like :func:`loads_json`, but ``NaN`` is accepted.

    MLflow's clients encode a frame with Python's ``json.dumps``, which writes
    a missing number as the bare token ``NaN`` (not JSON, but what they send);
    such a body is parsed again by the standard library, which reads it. A NaN
    is a null to the contract. Bodies without it pay only orjson.

    Example:
        >>> loads_mlflow_json(b'{"inputs": [[NaN, 700]]}')
        {'inputs': [[nan, 700]]}
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            pass
    return loads_json(body)  # raises the 400, with orjson's message


def invocation_records(
    runtime: ModelRuntime, payload: Any
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """An MLflow ``/invocations`` JSON body as (records, params), records not yet checked.

    Exactly one of ``dataframe_split`` (``columns``/``data``, optional
    ``index``), ``dataframe_records``, ``instances`` or ``inputs`` (a list of
    records, a list of rows in the model's column order, or an object of
    columns), plus an optional ``params`` object. Any other key is refused
    (MLflow drops it silently; here a typo such as ``param`` would be lost).

    Example:
        >>> invocation_records(runtime, {"dataframe_split": {"columns": ["distance"],
        ...                                                  "data": [[700]]}})
        ([{'distance': 700}], None)
    """
    if not isinstance(payload, dict):
        raise shape_error(
            "body",
            f"expected a JSON object with exactly one of {', '.join(MLFLOW_FORMATS)}, "
            f"got {kind_of(payload)}",
            'wrap the rows: {"dataframe_records": [...]}'
            if isinstance(payload, list)
            else _INVOCATIONS_FIX,
        )
    found = [k for k in MLFLOW_FORMATS if k in payload]
    unknown = [k for k in payload if k not in MLFLOW_FORMATS and k != "params"]
    if unknown:
        raise shape_error(unknown[0], _unknown_key_problem(runtime, unknown), _unknown_fix(unknown))
    if len(found) != 1:
        raise shape_error(
            "body" if not found else found[1],
            f"expected exactly one of {', '.join(MLFLOW_FORMATS)}, got "
            + (", ".join(found) if found else "none"),
            _INVOCATIONS_FIX,
        )
    params = payload.get("params")
    if params is not None and not isinstance(params, dict):
        raise shape_error(
            "params", f"expected an object, got {kind_of(params)}", 'send {"predict_fn": ...}'
        )
    key = found[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split(runtime, value), params
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise shape_error(
                key, f"expected a list of records, got {kind_of(value)}", _FIX_RECORDS
            )
        return record_list(runtime, value, key, _FIX_RECORDS), params
    return _tensor_rows(runtime, value, key), params


def _unknown_key_problem(runtime: ModelRuntime, unknown: list[str]) -> str:
    names = ", ".join(map(repr, unknown[:5]))
    return (
        f"unknown key(s) {names}: MLflow's scoring protocol takes one of "
        + ", ".join(MLFLOW_FORMATS)
        + (" and params" if "params" not in unknown else "")
    )


def _unknown_fix(unknown: list[str]) -> str:
    if {"columns", "data"} & set(unknown) or "records" in unknown:
        return (
            'this looks like a /predict body: wrap it as {"dataframe_split": {"columns": [...], '
            '"data": [...]}} or POST it to /predict'
        )
    return _INVOCATIONS_FIX


def _split(runtime: ModelRuntime, value: Any) -> list[dict[str, Any]]:
    """``dataframe_split``: pandas' ``to_dict(orient="split")``; ``index`` is checked, not used."""
    where = "dataframe_split"
    fix = 'send {"dataframe_split": {"columns": [...], "data": [[...], ...]}}'
    if not isinstance(value, dict):
        raise shape_error(where, f"expected an object, got {kind_of(value)}", fix)
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise shape_error(
            f"{where}.{extra[0]}",
            f"unknown key(s) {', '.join(map(repr, extra[:5]))}: expected columns, data, index",
            fix,
        )
    data = value.get("data")
    if not isinstance(data, list):
        raise shape_error(f"{where}.data", f"expected a list of rows, got {kind_of(data)}", fix)
    index = value.get("index")
    if index is not None and (not isinstance(index, list) or len(index) != len(data)):
        got = f"{len(index)} labels" if isinstance(index, list) else kind_of(index)
        raise shape_error(
            f"{where}.index",
            f"expected a list of {len(data)} labels (one per row), got {got}",
            "send one index label per row, or leave index out",
        )
    if value.get("columns") is None:
        return _positional(runtime, data, f"{where}.data")
    return columnar_records(runtime, value, f"{where}.")


def _tensor_rows(runtime: ModelRuntime, value: Any, where: str) -> list[dict[str, Any]]:
    """``instances``/``inputs``: records, rows in the model's column order, or columns."""
    if isinstance(value, dict):
        return _column_object(value, where)
    if not isinstance(value, list):
        raise shape_error(
            where,
            f"expected a list of records or rows, or an object of columns, got {kind_of(value)}",
            _INVOCATIONS_FIX,
        )
    if value and all(type(r) is dict for r in value):
        return value
    if all(type(r) is not dict for r in value):
        return _positional(runtime, value, where)
    i = next(i for i, r in enumerate(value) if type(r) is not dict)
    raise shape_error(
        f"{where}[{i}]",
        f"mixes records and rows: expected an object like the first item, got {kind_of(value[i])}",
        "send every item as a record, or every item as a list of values",
    )


def _positional(runtime: ModelRuntime, rows: list[Any], where: str) -> list[dict[str, Any]]:
    """Rows of values in the model's column order (MLflow's tensor input, unnamed)."""
    names = runtime.features
    width = len(names)
    if width == 1 and all(not isinstance(v, list | dict) for v in rows):
        return [{names[0]: v} for v in rows]  # one feature: a flat list of its values
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else kind_of(row)
            raise shape_error(
                f"{where}[{i}]",
                f"expected a list of {width} values in the model's column order "
                f"({', '.join(names[:12])}{', ...' if width > 12 else ''}), got {got}",
                "send one value per feature in that order, or name the columns: "
                '{"dataframe_split": {"columns": [...], "data": [...]}}',
            )
    return [dict(zip(names, row, strict=True)) for row in rows]


def _column_object(value: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """``{"col": [v0, v1, ...], ...}``: TensorFlow Serving's columnar ``inputs``."""
    if not value:
        raise shape_error(where, "the object names no columns", _INVOCATIONS_FIX)
    lengths: dict[str, int] = {}
    for name, values in value.items():
        if not isinstance(values, list):
            raise shape_error(
                f"{where}.{name}",
                f"expected a list of values (one per row), got {kind_of(values)}",
                f'send {{"{where}": {{"{name}": [v0, v1, ...], ...}}}}',
            )
        lengths[name] = len(values)
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k}: {v}" for k, v in list(lengths.items())[:8])
        raise InputError(
            [{"field": k, "error": f"{v} value(s)"} for k, v in lengths.items()],
            what=f"columns of {where} have different lengths",
            why=f"every column holds the same rows ({sizes})",
            fix="send the same number of values for every column",
        )
    names = list(value)
    return [dict(zip(names, row, strict=True)) for row in zip(*value.values(), strict=True)]


def invocation_predict_fn(
    runtime: ModelRuntime, params: dict[str, Any] | None, query: str | None
) -> str:
    """What a request asks for: ``predict`` (labels, the default) or ``predict_proba``.

    From ``params.predict_fn`` (JSON) or the ``predict_fn`` query argument
    (CSV has no params); unknown params are refused, like unknown keys.

    Example:
        >>> invocation_predict_fn(runtime, {"predict_fn": "predict_proba"}, None)
        'predict_proba'
    """
    chosen: Any = query
    where = "predict_fn (query)"
    if params:
        extra = sorted(set(params) - {"predict_fn"})
        if extra:
            raise shape_error(
                f"params.{extra[0]}",
                f"unknown parameter(s) {', '.join(map(repr, extra[:5]))}: this model takes "
                "only predict_fn",
                'send {"params": {"predict_fn": "predict_proba"}} or no params',
            )
        if "predict_fn" in params:
            if query is not None and params["predict_fn"] != query:
                raise shape_error(
                    "params.predict_fn",
                    f"the query says {query!r} but params say {params['predict_fn']!r}",
                    "give predict_fn once",
                )
            chosen, where = params["predict_fn"], "params.predict_fn"
    if chosen is None:
        return "predict"
    if chosen not in PREDICT_FNS:
        raise shape_error(
            where,
            f"unknown predict_fn {short_value(chosen)}",
            f"use one of: {', '.join(PREDICT_FNS)}",
        )
    if chosen == "predict_proba" and not runtime.is_classifier:
        raise shape_error(
            where,
            f"model '{runtime.meta.name}' is a regressor: it has no class probabilities",
            "leave predict_fn out (or use predict)",
        )
    return str(chosen)


def csv_records(runtime: ModelRuntime, body: bytes) -> list[dict[str, Any]]:
    """A ``text/csv`` body (a header line, then rows: ``DataFrame.to_csv()``) as typed records.

    Cells become what a JSON client would send for the feature's kind: an
    empty cell is null; numbers and ``true``/``false`` are parsed; text that
    does not parse stays text, so the contract check names it. Columns that
    are not features (the pandas index, an id) are kept as text.

    Example:
        >>> csv_records(runtime, b"distance,carrier\\n700,AA\\n")
        [{'distance': 700, 'carrier': 'AA'}]
    """
    try:
        text = body.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError as exc:
        raise HTTPProblem(
            400,
            "CSV body is not UTF-8",
            str(exc),
            "send UTF-8 text (Content-Type: text/csv; charset=utf-8)",
        ) from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as exc:
        raise HTTPProblem(
            400, "CSV body does not parse", str(exc), "send the output of DataFrame.to_csv()"
        ) from None
    fix = "send a header line naming the columns, then one line per row (DataFrame.to_csv())"
    if not rows:
        raise shape_error("body", "the CSV body is empty: no header line", fix)
    header = [name.strip() for name in rows[0]]
    if len(set(header)) != len(header):
        dupes = sorted({c for c in header if header.count(c) > 1})
        raise shape_error(
            "header", f"duplicate column name(s): {', '.join(dupes)}", "name each column once"
        )
    kinds = {c.name: c.kind for c in runtime.input_schema.columns}
    convert = [_CSV_CELL.get(kinds.get(name, ""), _text_cell) for name in header]
    width = len(header)
    records: list[dict[str, Any]] = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise shape_error(
                f"line {line}",
                f"expected {width} values (one per header column), got {len(row)}",
                fix,
            )
        records.append({name: f(cell) for name, f, cell in zip(header, convert, row, strict=True)})
    return records


def _text_cell(cell: str) -> Any:
    return cell if cell != "" else None


def _number_cell(cell: str) -> Any:
    text = cell.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return cell  # left as text: the contract check names the field


def _boolean_cell(cell: str) -> Any:
    text = cell.strip().lower()
    if not text:
        return None
    return True if text in CSV_TRUE else False if text in CSV_FALSE else cell


# The words the batch job reads from a CSV as booleans (serve/model/coerce.py; a test
# keeps the two the same).
CSV_TRUE = frozenset({"true", "t", "yes", "y", "1"})
CSV_FALSE = frozenset({"false", "f", "no", "n", "0"})
_CSV_CELL = {"numeric": _number_cell, "boolean": _boolean_cell}


def invocation_body_records(runtime: ModelRuntime, body: bytes) -> list[dict[str, Any]]:
    """The records of a logged ``/invocations`` body, JSON or CSV (for the prediction log).

    A JSON body is an object, so it starts with ``{``; a CSV body starting so
    would have to name a feature ``{...``. Same functions as the request path.

    Example:
        >>> invocation_body_records(runtime, b'{"dataframe_records": [{"distance": 700}]}')
        [{'distance': 700}]
    """
    if body.lstrip()[:1] == b"{":
        try:
            payload = loads_mlflow_json(body)
        except HTTPProblem:
            pass
        else:
            return invocation_records(runtime, payload)[0]
    return csv_records(runtime, body)


class InvocationsDecoder(RecordsDecoder):
    """Reads logged ``/invocations`` bodies (JSON or CSV) back into their records.

    Example:
        >>> InvocationsDecoder(runtime, "invocations").decode(b'{"inputs": [[700]]}')
        [{'distance': 700}]
    """

    def decode(self, body: bytes) -> list[dict[str, Any]]:
        """One body's records."""
        return invocation_body_records(self.runtime, body)
