"""Inferring the data contract (:class:`~mlcycle.schema.Schema`) from a frame.

Kinds come from :func:`mlcycle.schema.kind_of`; a text column with few distinct
values becomes categorical (with its categories), and roles come from the
problem (target, id, timestamp) and the feature selection in the spec.

Example:
    >>> schema = infer_schema(df, spec.problem, spec.data.features)
    >>> schema.names("feature")
    ['carrier', 'origin', 'distance']
"""

from __future__ import annotations

import warnings

import pandas as pd

from mlcycle.errors import BadInput
from mlcycle.schema import ColumnSchema, Kind, Role, Schema, kind_of
from mlcycle.spec import Features, Problem

_SHOWN = 30  # how many column names an error message lists


def infer_schema(df: pd.DataFrame, problem: Problem, features: Features) -> Schema:
    """One :class:`ColumnSchema` per column of ``df``, in ``df`` order.

    Roles: the target is "target", ``problem.id_column`` is "id" (unique),
    ``problem.timestamp_column`` is "timestamp", ``features.exclude`` are
    "ignored"; with ``features.include`` only those are features. Text columns
    with more than ``features.max_categories`` values are "ignored" unless
    included by name (free text is no feature for a tabular model).

    A timestamp column must already be datetime (see :func:`parse_timestamp`) or
    numeric; text that parses as dates is accepted as kind "datetime", but the
    frame must then be converted before validation.

    Example:
        >>> df = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"], "y": [0, 1]})
        >>> s = infer_schema(df, Problem(task="binary", target="y"), Features())
        >>> [(c.name, c.kind, c.role) for c in s.columns]
        [('x', 'numeric', 'feature'), ('c', 'categorical', 'feature'), ('y', 'numeric', 'target')]
    """
    _check_columns([str(c) for c in df.columns], problem, features)
    included = set(features.include) if features.include is not None else None
    excluded = set(features.exclude)
    out = [
        _infer_column(df[name], str(name), problem, features, included, excluded)
        for name in df.columns
    ]
    _check_target(df[problem.target], problem, out)
    if not any(c.role == "feature" for c in out):
        roles = ", ".join(f"{c.name} ({c.kind}, {c.role})" for c in out[:_SHOWN])
        raise BadInput(
            "no feature columns are left",
            f"every column is the target, id, timestamp, excluded or free text: {roles}",
            "add columns to data.features.include, shorten data.features.exclude, or raise "
            "data.features.max_categories",
        )
    return Schema(columns=out)


def _check_columns(columns: list[str], problem: Problem, features: Features) -> None:
    """Every column the spec names exists, once, and no special column is also an input."""
    if len(set(columns)) != len(columns):
        dups = sorted({c for c in columns if columns.count(c) > 1})
        raise BadInput(
            f"column name(s) {dups} appear more than once in the data",
            "every column of the contract needs a unique name",
            "rename the duplicated columns in the source",
        )
    _require(problem.target, columns, "target column", "problem.target")
    if problem.id_column is not None:
        _require(problem.id_column, columns, "id column", "problem.id_column")
    if problem.timestamp_column is not None:
        _require(problem.timestamp_column, columns, "timestamp column", "problem.timestamp_column")
    for name in features.include or []:
        _require(name, columns, "included feature", "data.features.include")
    for name in features.exclude:
        _require(name, columns, "excluded feature", "data.features.exclude")
    special = {
        problem.target: "problem.target",
        problem.id_column: "problem.id_column",
        problem.timestamp_column: "problem.timestamp_column",
    }
    for name in features.include or []:
        if name in special:
            raise BadInput(
                f"column '{name}' is both in data.features.include and {special[name]}",
                "a target, id or timestamp column cannot also be a model input (it would "
                "leak the answer or tie the model to row identity)",
                f"remove '{name}' from data.features.include",
            )


def _infer_column(
    series: pd.Series,
    name: str,
    problem: Problem,
    features: Features,
    included: set[str] | None,
    excluded: set[str],
) -> ColumnSchema:
    """One column's contract: its role from the spec, its kind and domain from its values."""
    kind = kind_of(series)
    role: Role
    if name == problem.target:
        role = "target"
    elif name == problem.id_column:
        role = "id"
    elif name == problem.timestamp_column:
        role = "timestamp"
        kind = _timestamp_kind(series, name, kind)
    elif name in excluded or (included is not None and name not in included):
        role = "ignored"
    else:
        role = "feature"

    nullable = bool(series.isna().any())
    if kind == "string" and role not in ("id", "timestamp") and mostly_numeric(series):
        # A number column with a few text values ("late"): the contract says numeric,
        # and validation names the values that are not numbers instead of the model
        # learning '-1', '-10', ... as categories. Nullable, so mapping those values
        # to nulls (in the source or a transform) is a fix the contract accepts.
        kind, nullable = "numeric", True

    categories: list[str] | None = None
    if kind in ("string", "categorical") and role not in ("id", "timestamp"):
        values = _distinct_text(series)
        if len(values) <= features.max_categories:
            kind, categories = "categorical", values
        else:
            kind = "string"
            # Free text / high-cardinality codes: only a column the user asked
            # for by name stays a feature.
            if role == "feature" and included is None:
                role = "ignored"

    low = high = None
    if kind == "numeric":
        low, high = _finite_range(series)
    return ColumnSchema(
        name=name,
        kind=kind,
        role=role,
        nullable=nullable,
        min=low,
        max=high,
        categories=categories,
        unique=role == "id",
    )


NUMERIC_SHARE = 0.95
"""The share of a text column's non-null values that must parse as numbers for it to be
inferred numeric (the rest are reported by validation, not silently made missing)."""
_PROBE = 1000  # values tried first, so a column of words is dismissed cheaply


def mostly_numeric(series: pd.Series) -> bool:
    """Whether at least :data:`NUMERIC_SHARE` of the non-null values parse as numbers.

    Example:
        >>> mostly_numeric(pd.Series(["1", "2"] * 50 + ["late"]))
        True
        >>> mostly_numeric(pd.Series(["EWR", "JFK", "1"]))
        False
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        return False  # the frame's author chose categories; keep them
    present = series.dropna()
    if present.empty:
        return False
    try:
        probe = pd.to_numeric(present.iloc[:_PROBE], errors="coerce").notna().mean()
        if probe < NUMERIC_SHARE / 2:
            return False
        parsed = pd.to_numeric(present, errors="coerce").notna()
    except (TypeError, ValueError):
        return False  # cells that are not scalars (lists, dicts): not a number column
    return bool(parsed.mean() >= NUMERIC_SHARE)


def parse_timestamp(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Return ``df`` with a text ``column`` converted to UTC datetimes (a new frame).

    Call it before :func:`infer_schema` and validation when the timestamp came
    from CSV as text. Text without an offset is taken as UTC, so every stage
    compares the same tz-aware instants. A datetime or numeric column is kept.

    Example:
        >>> df = parse_timestamp(pd.DataFrame({"t": ["2024-01-01", "2024-01-02"]}), "t")
        >>> str(df["t"].dtype).startswith("datetime64")
        True
    """
    _require(column, [str(c) for c in df.columns], "timestamp column", "problem.timestamp_column")
    if kind_of(df[column]) not in ("string", "categorical"):
        return df
    out = df.copy()
    out[column] = _to_datetime(df[column], column)
    return out


# --- helpers ------------------------------------------------------------------------


def _require(name: str, columns: list[str], what: str, key: str) -> None:
    if name in columns:
        return
    shown = ", ".join(columns[:_SHOWN]) + (" ..." if len(columns) > _SHOWN else "")
    raise BadInput(
        f"{what} '{name}' not found in the data",
        f"{key} names it, but the data has columns: {shown}",
        f"set {key} to one of the columns above",
    )


def _distinct_text(series: pd.Series) -> list[str]:
    """Distinct non-null values as strings, sorted (the contract compares text)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        # The declared categories are the domain, observed or not.
        values = series.cat.categories
    else:
        values = pd.Index(series.dropna().unique())
    return sorted({str(v) for v in values})


def _finite_range(series: pd.Series) -> tuple[float | None, float | None]:
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    finite = values[values.abs() != float("inf")].dropna()
    if finite.empty:
        return None, None
    return float(finite.min()), float(finite.max())


def _timestamp_kind(series: pd.Series, name: str, kind: Kind) -> Kind:
    if kind in ("datetime", "numeric"):
        return kind
    if kind in ("string", "categorical"):
        _to_datetime(series, name)
        return "datetime"
    raise BadInput(
        f"timestamp column '{name}' holds {kind} values",
        "a timestamp must be a date/time or a number that orders the rows in time",
        "set problem.timestamp_column to a date/time column",
    )


def _to_datetime(series: pd.Series, name: str) -> pd.Series:
    try:
        with warnings.catch_warnings():
            # Text without one inferable format is parsed value by value; that is
            # what we want here, not a warning the user cannot act on.
            warnings.simplefilter("ignore", UserWarning)
            return pd.to_datetime(series, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        example = next(iter(series.dropna().astype(str).head(1)), "")
        raise BadInput(
            f"timestamp column '{name}' does not hold dates",
            f"values like {example!r} do not parse as date/time ({exc})",
            "fix the values (ISO 8601 such as 2024-01-31T12:00:00 parses) or set "
            "problem.timestamp_column to another column",
        ) from None


def _check_target(target: pd.Series, problem: Problem, columns: list[ColumnSchema]) -> None:
    name = str(target.name)
    distinct = int(target.nunique(dropna=True))
    if problem.task in ("binary", "multiclass"):
        if distinct < 2:
            seen = ", ".join(str(v) for v in target.dropna().unique()[:1]) or "only nulls"
            raise BadInput(
                f"target column '{name}' has {distinct} distinct value(s) ({seen})",
                f"a {problem.task} model needs at least two classes to learn from",
                "check the source holds examples of every class, or fix problem.target",
            )
        if problem.task == "binary" and distinct > 2:
            shown = sorted(str(v) for v in target.dropna().unique()[:10])
            raise BadInput(
                f"target column '{name}' has {distinct} distinct values, e.g. {shown}",
                "task 'binary' needs exactly two classes",
                "set problem.task to multiclass, or derive a two-valued target column",
            )
    else:
        kind = next(c.kind for c in columns if c.name == name)
        if kind != "numeric":
            raise BadInput(
                f"target column '{name}' is {kind}, not numeric",
                "task 'regression' predicts a number",
                "set problem.task to binary or multiclass, or convert the target to numbers",
            )
        if distinct < 2:
            raise BadInput(
                f"target column '{name}' has {distinct} distinct value(s)",
                "a regression model cannot learn from a constant target",
                "check the source, or fix problem.target",
            )
