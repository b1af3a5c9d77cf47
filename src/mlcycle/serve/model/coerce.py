"""Coercion of request and file values to the kinds of the data contract, and the error texts.

Dtypes produced, by schema kind (what a pandas 3 training frame read from
Parquet has): numeric → ``float64`` (NaN for null); categorical and string →
pandas ``"str"``; boolean → ``bool`` (``float64`` 0/1/NaN when a null is
present); datetime → ``datetime64`` (offsets converted to UTC, then dropped).

Example:
    >>> values, bad, bad_values = coerce_column(["1", 2.5, None], column, from_text=True)
"""

from __future__ import annotations

import decimal
import math
import numbers
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import BadInput
from mlcycle.schema import ColumnSchema

MAX_EXAMPLES = 5
Detail = dict[str, Any]


class InputError(BadInput):
    """Input rows break the model's data contract; ``details`` names each bad field.

    Example:
        >>> try:
        ...     rt.validate_records([{"distance": "far"}])
        ... except InputError as exc:
        ...     exc.details[0]
        {'field': 'carrier', 'error': "column 'carrier' (categorical) is missing"}
    """

    def __init__(
        self,
        details: list[Detail],
        what: str = "the input does not match the model's data contract",
        why: str = "",
        fix: str = "",
    ) -> None:
        self.details = details
        if not why:
            why = "; ".join(str(d["error"]) for d in details[:3])
            if len(details) > 3:
                why += f"; and {len(details) - 3} more problem(s)"
        if not fix:
            fix = "fix the fields named in details (GET /v2/models/{name} lists the inputs)"
        super().__init__(what, why, fix)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "details": self.details}


# --- coercion -----------------------------------------------------------------------

TEXT_KINDS = ("categorical", "string")
EXPECTED = {
    "numeric": "a finite number",
    "boolean": "true or false",
    "categorical": "a string",
    "string": "a string",
    "datetime": "an ISO 8601 date-time",
}
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def frame_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    """A frame's columns by name; :class:`InputError` when a name appears twice.

    Example:
        >>> list(frame_columns(pd.DataFrame({"a": [1]})))
        ['a']
    """
    if not df.columns.is_unique:
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise InputError(
            [{"field": c, "error": f"column '{c}' appears more than once"} for c in dupes],
            what="duplicate input columns",
        )
    return {str(name): df[name] for name in df.columns}


def _is_null(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float | np.floating) and math.isnan(v)


def coerce_column(
    data: Any, col: ColumnSchema, from_text: bool
) -> tuple[Any, np.ndarray, list[Any]]:
    """Coerce one column to its kind: (values, bad-row mask, the bad values).

    Example:
        >>> values, bad, bad_values = coerce_column(["1", 2.5, None], column, from_text=True)
    """
    if isinstance(data, pd.Series):
        fast = _coerce_series(data, col.kind, from_text)
        if fast is not None:
            return fast
        data = data.astype(object).tolist()
    elif not isinstance(data, list):
        data = list(data)
    if col.kind == "numeric":
        return _numbers(data, from_text)
    if col.kind == "boolean":
        return _booleans(data, from_text)
    if col.kind == "datetime":
        return _datetimes(data)
    return _texts(data)


def _coerce_series(
    s: pd.Series, kind: str, from_text: bool
) -> tuple[Any, np.ndarray, list[Any]] | None:
    """Vectorised paths for typed columns; ``None`` means use the per-value path."""
    dtype = s.dtype
    n = len(s)
    no_bad = np.zeros(n, dtype=bool)
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
        return None
    is_bool = pd.api.types.is_bool_dtype(dtype)
    is_number = (
        pd.api.types.is_numeric_dtype(dtype)
        and not is_bool
        and not pd.api.types.is_complex_dtype(dtype)
    )
    is_text = isinstance(dtype, pd.StringDtype)
    if kind == "numeric":
        if is_number:
            values = s.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.isinf(values)
            return np.where(bad, np.nan, values), bad, values[bad].tolist()
        if is_text and from_text:
            parsed = pd.to_numeric(s.str.strip(), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            bad = (s.notna().to_numpy() & np.isnan(parsed)) | np.isinf(parsed)
            return np.where(bad, np.nan, parsed), bad, s[bad].tolist()
        return None
    if kind in TEXT_KINDS:
        if is_text:
            return s.astype("str").reset_index(drop=True), no_bad, []
        if pd.api.types.is_integer_dtype(dtype) and not s.isna().any():
            return s.astype("str").reset_index(drop=True), no_bad, []
        return None
    if kind == "boolean" and is_bool and not s.isna().any():
        return s.to_numpy(dtype=bool), no_bad, []
    if kind == "datetime" and pd.api.types.is_datetime64_any_dtype(dtype):
        if isinstance(dtype, pd.DatetimeTZDtype):
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        return s.reset_index(drop=True), no_bad, []
    return None


def _numbers(values: list[Any], from_text: bool) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    n = len(values)
    if set(map(type, values)) <= {int, float, type(None)}:
        try:
            arr = np.array(values, dtype=np.float64)
        except OverflowError:
            pass
        else:
            bad = np.isinf(arr)
            if not bad.any():
                return arr, bad, []
    arr = np.empty(n, dtype=np.float64)
    bad = np.zeros(n, dtype=bool)
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        number: float | None = None
        if _is_null(v):
            number = math.nan
        elif isinstance(v, bool | np.bool_):
            number = None
        elif isinstance(v, numbers.Real | decimal.Decimal):
            # Decimal: what a Parquet decimal column becomes in pandas.
            try:
                number = float(v)
            except (OverflowError, ValueError):
                number = None
        elif from_text and isinstance(v, str):
            try:
                number = float(v.strip())
            except ValueError:
                number = None
        if number is None or math.isinf(number):
            bad[i] = True
            bad_values.append(v)
            number = math.nan
        arr[i] = number
    return arr, bad, bad_values


def _booleans(values: list[Any], from_text: bool) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    n = len(values)
    arr = np.full(n, np.nan, dtype=np.float64)
    bad = np.zeros(n, dtype=bool)
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        if _is_null(v):
            continue
        flag: bool | None = None
        if isinstance(v, bool | np.bool_) or (isinstance(v, numbers.Real) and v in (0, 1)):
            flag = bool(v)
        elif from_text and isinstance(v, str):
            text = v.strip().lower()
            flag = True if text in _TRUE else False if text in _FALSE else None
        if flag is None:
            bad[i] = True
            bad_values.append(v)
        else:
            arr[i] = 1.0 if flag else 0.0
    if np.isnan(arr).any():
        return arr, bad, bad_values
    return arr.astype(bool), bad, bad_values


def _texts(values: list[Any]) -> tuple[pd.Series, np.ndarray, list[Any]]:
    n = len(values)
    bad = np.zeros(n, dtype=bool)
    if set(map(type, values)) <= {str, type(None)}:
        return pd.Series(values, dtype="str"), bad, []
    out: list[Any] = [None] * n
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        if _is_null(v):
            continue
        if isinstance(v, str):
            out[i] = str(v)
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_):
            # int-coded categories (zip codes, airport ids) arrive as numbers.
            out[i] = str(int(v))
        elif isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer():
            out[i] = str(int(v))
        else:
            bad[i] = True
            bad_values.append(v)
    return pd.Series(out, dtype="str"), bad, bad_values


def _datetimes(values: list[Any]) -> tuple[pd.Series, np.ndarray, list[Any]]:
    n = len(values)
    out: list[Any] = [pd.NaT] * n
    bad = np.zeros(n, dtype=bool)
    bad_values: list[Any] = []
    for i, v in enumerate(values):
        if _is_null(v):
            continue
        stamp: pd.Timestamp | None = None
        if isinstance(v, str | datetime | np.datetime64):
            try:
                stamp = pd.Timestamp(v)
            except (ValueError, TypeError, OverflowError):
                stamp = None
        if stamp is None or stamp is pd.NaT:
            bad[i] = True
            bad_values.append(v)
            continue
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        out[i] = stamp
    return pd.Series(pd.to_datetime(out)), bad, bad_values


# --- messages -----------------------------------------------------------------------


def show(v: Any) -> str:
    """A value as an error message quotes it (``null``, ``repr``, cut at 40 characters).

    Example:
        >>> show(None), show("AA")
        ('null', "'AA'")
    """
    if v is None:
        return "null"
    text = repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= 40 else text[:37] + "..."


def distinct(values: list[Any]) -> list[Any]:
    """Up to :data:`MAX_EXAMPLES` distinct values (as :func:`show` prints them), in order.

    Example:
        >>> distinct(["a", "a", "b"])
        ['a', 'b']
    """
    seen: list[Any] = []
    keys: set[str] = set()
    for v in values:
        key = show(v)
        if key not in keys:
            keys.add(key)
            seen.append(v)
        if len(seen) >= MAX_EXAMPLES:
            break
    return seen


def rows_text(rows: np.ndarray, total: int) -> str:
    """Row positions as an error message names them (``rows 0, 3 and 9 more``).

    Example:
        >>> rows_text(np.array([0, 3]), total=10)
        'rows 0, 3'
    """
    if total == 1:
        return "row 0"
    shown = ", ".join(str(r) for r in rows[:MAX_EXAMPLES].tolist())
    more = f" and {len(rows) - MAX_EXAMPLES} more" if len(rows) > MAX_EXAMPLES else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"
