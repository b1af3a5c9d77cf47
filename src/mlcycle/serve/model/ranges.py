"""Numeric inputs outside the training range: which features are checked, and what to say.

The range of a numeric feature is the ``min``/``max`` of the rows the model
was built from: the bundle's ``profile.json`` (the dataset version's profile,
the ranges monitoring checks windows against too), else, for a bundle without
a profile or a feature it lacks, the contract's ``min``/``max``
(``schema.json``). A feature named in the bundle's
``seasonal`` list (``spec.data.features.seasonal``: month, week, day of year)
is never checked: it moves past the training range with time by design. A
null or NaN is missing, not out of range. What happens to a value outside is
the bundle's ``out_of_range`` policy (``flag``: scored, with a warning on the
row; ``reject``: refused), which ``mlcycle serve --out-of-range`` may override.

An out-of-range value is reported as ``(row, feature, value)``, by the
compiled path (``fastpath.py``, while it encodes the row) and by
:func:`frame_outside` (the generic path and batch, vectorised).

Example:
    >>> ranges = checked_ranges(runtime.input_schema, seasonal=["month"])
    >>> ranges["distance"]
    (17.0, 4983.0)
    >>> row_warnings(2, [(1, "distance", -500000)], ranges)
    [[], [{'column': 'distance', 'value': -500000, 'min': 17.0, 'max': 4983.0, 'message': ...}]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import Profile
from mlcycle.schema import Schema

POLICIES = ("flag", "reject")
#: One value outside its range: (row position, feature, the value as sent).
Outside = tuple[int, str, Any]


def checked_ranges(
    input_schema: Schema, seasonal: Iterable[str], profile: Profile | None = None
) -> dict[str, tuple[float, float]]:
    """Numeric features with a training range, as ``name → (low, high)`` (±inf: no bound).

    The profile's ``min``/``max`` where it has them, else the contract's.

    Example:
        >>> checked_ranges(schema, seasonal=["month"], profile=bundle.profile())
        {'dep_delay': (-61.0, 1301.0), 'distance': (17.0, 4983.0)}
    """
    skip = set(seasonal)
    seen = {c.name: (c.min, c.max) for c in profile.columns} if profile is not None else {}
    out: dict[str, tuple[float, float]] = {}
    for col in input_schema.columns:
        if col.kind != "numeric" or col.name in skip:
            continue
        low, high = seen.get(col.name, (None, None))
        if low is None and high is None:
            low, high = col.min, col.max
        if low is None and high is None:
            continue
        out[col.name] = (
            -math.inf if low is None else float(low),
            math.inf if high is None else float(high),
        )
    return out


def frame_outside(frame: pd.DataFrame, ranges: dict[str, tuple[float, float]]) -> list[Outside]:
    """Every value of a validated frame outside its range, row by row (NaN is never outside).

    Example:
        >>> frame_outside(pd.DataFrame({"distance": [700.0, -5.0]}), {"distance": (50, 5000)})
        [(1, 'distance', -5.0)]
    """
    found: list[Outside] = []
    for name, mask in outside_masks(frame, ranges).items():
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        found += [(int(i), name, plain_number(values[i])) for i in np.flatnonzero(mask)]
    found.sort(key=lambda item: item[0])
    return found


def outside_masks(frame: Any, ranges: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Per checked feature with a value outside its range: the boolean mask of those rows.

    ``frame`` is a DataFrame or a mapping name → numeric values. Comparisons
    with NaN are false, so a missing value is never outside.

    Example:
        >>> outside_masks({"distance": np.array([700.0, -5.0])}, {"distance": (50, 5000)})
        {'distance': array([False,  True])}
    """
    masks: dict[str, np.ndarray] = {}
    for name, (low, high) in ranges.items():
        column = frame.get(name) if hasattr(frame, "get") else None
        if column is None:
            continue
        values = np.asarray(
            column.to_numpy(dtype=np.float64, na_value=np.nan)
            if hasattr(column, "to_numpy")
            else column,
            dtype=np.float64,
        )
        mask = (values < low) | (values > high)
        if mask.any():
            masks[name] = mask
    return masks


def range_text(low: float, high: float) -> str:
    """A range as messages print it: ``[1, 12]``, ``[0, ∞)``.

    Example:
        >>> range_text(1.0, 12.0), range_text(0.0, math.inf)
        ('[1, 12]', '[0, ∞)')
    """
    left = "(-∞" if math.isinf(low) else f"[{low:g}"
    right = "∞)" if math.isinf(high) else f"{high:g}]"
    return f"{left}, {right}"


def warning(name: str, value: Any, low: float, high: float) -> dict[str, Any]:
    """One row's warning for one feature: column, value, range and a sentence.

    Example:
        >>> warning("month", 99, 1.0, 12.0)["message"]
        'month = 99 is outside the training range [1, 12]: scored anyway, treat with care'
    """
    return {
        "column": name,
        "value": value,
        "min": None if math.isinf(low) else low,
        "max": None if math.isinf(high) else high,
        "message": f"{name} = {value!r} is outside the training range "
        f"{range_text(low, high)}: scored anyway, treat with care",
    }


def row_warnings(
    rows: int, outside: Sequence[Outside], ranges: dict[str, tuple[float, float]]
) -> list[list[dict[str, Any]]]:
    """One list of warnings per row (empty for a row in range), from ``(row, feature, value)``.

    Example:
        >>> row_warnings(2, [(1, "month", 99)], {"month": (1.0, 12.0)})[0]
        []
    """
    out: list[list[dict[str, Any]]] = [[] for _ in range(rows)]
    for row, name, value in outside:
        low, high = ranges[name]
        out[row].append(warning(name, value, low, high))
    return out


def plain_number(value: Any) -> Any:
    """A float that holds a whole number as an int (as a client most likely sent it).

    Example:
        >>> plain_number(-500000.0), plain_number(2.5)
        (-500000, 2.5)
    """
    number = float(value)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
