"""The data contract: one definition of the columns, shared by every stage.

The schema is inferred at first ingest (``mlcycle.data``), written to
``schema.yaml`` for a person to edit, frozen into each dataset version, copied
into the model bundle as its signature, enforced by the REST service and the
batch job, and used by monitoring as the reference. It lives here, below the
stages, because all of them read it.

Example:
    >>> schema = Schema.from_yaml(Path("schema.yaml"))
    >>> problems = check_frame(df, schema, roles=("feature",))
    >>> [p.message for p in problems if p.severity == "error"]
    []
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["numeric", "boolean", "categorical", "string", "datetime"]
Role = Literal["feature", "target", "id", "timestamp", "ignored"]


class ColumnSchema(BaseModel):
    """One column of the contract: its kind, its role, and what its values may be.

    Example:
        >>> ColumnSchema(name="carrier", kind="categorical", categories=["AA", "UA"]).role
        'feature'
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Kind
    role: Role = "feature"
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = Field(
        default=None, description="allowed values (as strings) of a categorical column"
    )
    unique: bool = False


class Schema(BaseModel):
    """An ordered list of columns with their kind, role and constraints."""

    model_config = ConfigDict(extra="forbid")

    columns: list[ColumnSchema]

    def column(self, name: str) -> ColumnSchema:
        """The column named ``name``; ``KeyError`` if the contract has none.

        Example:
            >>> schema.column("distance").kind
            'numeric'
        """
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def names(self, *roles: Role) -> list[str]:
        """Column names, optionally only those with one of ``roles``.

        Example:
            >>> schema.names("target")
            ['arr_delayed']
        """
        return [c.name for c in self.columns if not roles or c.role in roles]

    @property
    def features(self) -> list[ColumnSchema]:
        """The columns the model takes as input, in contract order.

        Example:
            >>> [c.name for c in schema.features]
            ['carrier', 'distance']
        """
        return [c for c in self.columns if c.role == "feature"]

    def to_yaml(self, path: Path) -> None:
        """Write the contract for a person to edit (atomically: temp file, then rename).

        Example:
            >>> schema.to_yaml(Path("schema.yaml"))
        """
        doc = {
            "columns": [
                c.model_dump(exclude_none=True, exclude_defaults=False) for c in self.columns
            ]
        }
        header = (
            "# mlcycle data contract: inferred at first ingest, then yours to edit.\n"
            "# Every new dataset version, serving request and monitoring window is\n"
            "# checked against it. kinds: numeric boolean categorical string datetime;\n"
            "# roles: feature target id timestamp ignored.\n"
        )
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(
            header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        tmp.replace(path)

    @classmethod
    def from_yaml(cls, path: Path) -> Schema:
        """Read a contract written by :meth:`to_yaml` (and perhaps edited since).

        Example:
            >>> Schema.from_yaml(Path("schema.yaml")).names("feature")
            ['carrier', 'distance']
        """
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


class Violation(BaseModel):
    """One way a frame breaks the contract."""

    column: str | None
    check: Literal[
        "missing",
        "extra",
        "type",
        "null",
        "range",
        "category",
        "unique",
        "empty",
        # declared expectations (data.expectations) and the data stage's own checks
        "row_count",
        "null_rate",
        "allowed",
        "freshness",
        "distribution",
        "malformed",
        "duplicate",
    ]
    severity: Literal["error", "warn"]
    message: str
    count: int = 0


def kind_of(series: pd.Series) -> Kind:
    """The contract kind a pandas column has (before any categorical decision).

    Example:
        >>> kind_of(pd.Series(["a", "b"])), kind_of(pd.Series([1.5]))
        ('string', 'numeric')
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    return "string"


def _compatible(expected: Kind, actual: Kind) -> bool:
    if expected == actual:
        return True
    text = {"categorical", "string"}
    if expected in text and actual in text:
        return True
    # A boolean column read from CSV/JSON may arrive as 0/1 numbers.
    return expected == "boolean" and actual == "numeric"


def check_frame(
    df: pd.DataFrame,
    schema: Schema,
    *,
    roles: tuple[Role, ...] = ("feature", "target", "id", "timestamp"),
    ranges: bool = True,
    unseen_is_error: bool = True,
) -> list[Violation]:
    """Check ``df`` against the columns of ``schema`` that have one of ``roles``.

    Missing columns, wrong kinds and nulls in non-nullable columns are errors;
    out-of-range values are warnings (the world moves; monitoring tracks it);
    unseen categories are errors unless ``unseen_is_error`` is false.

    Example:
        >>> [v.check for v in check_frame(pd.DataFrame({"x": [None]}), schema)]
        ['null', 'missing']
    """
    out: list[Violation] = []
    if len(df) == 0:
        out.append(Violation(column=None, check="empty", severity="error", message="no rows"))
    for col in schema.columns:
        if col.role not in roles:
            continue
        if col.name not in df.columns:
            out.append(
                Violation(
                    column=col.name,
                    check="missing",
                    severity="error",
                    message=f"column '{col.name}' ({col.kind}, {col.role}) is missing",
                )
            )
            continue
        out += _check_column(col, df[col.name], ranges=ranges, unseen_is_error=unseen_is_error)
    return out


def _check_column(
    col: ColumnSchema, series: pd.Series, *, ranges: bool, unseen_is_error: bool
) -> list[Violation]:
    actual = kind_of(series)
    if col.kind == "numeric" and actual in ("string", "categorical"):
        not_numbers = _not_numbers(col, series)
        if not_numbers is not None:
            return [not_numbers]
    if not _compatible(col.kind, actual) and not series.isna().all():
        # Values of the wrong kind make the value checks meaningless: report the kind only.
        return [
            Violation(
                column=col.name,
                check="type",
                severity="error",
                message=f"column '{col.name}' should be {col.kind} but is {actual} "
                f"({series.dtype})",
            )
        ]
    found = [
        _nulls(col, series),
        _out_of_range(col, series) if ranges else None,
        _unseen(col, series, unseen_is_error),
        _duplicates(col, series),
    ]
    return [v for v in found if v is not None]


def _not_numbers(col: ColumnSchema, series: pd.Series) -> Violation | None:
    """A numeric column holding text that is not a number ("late"): how many, which.

    An error, not a warning: the model would see those rows as missing values,
    which is a decision for a person, not for the pipeline to make silently.
    """
    present = series.dropna()
    try:
        bad = pd.to_numeric(present, errors="coerce").isna()
    except (TypeError, ValueError):
        return None
    count = int(bad.sum())
    if not count:
        return None
    examples = list(dict.fromkeys(present[bad].astype(str).head(200)))[:5]
    return Violation(
        column=col.name,
        check="type",
        severity="error",
        message=f"column '{col.name}' should be numeric but {count} of {len(present)} "
        f"value(s) are not numbers, e.g. {examples}; a model would see them as missing, so "
        "fix them in the source (an empty cell is a missing value)",
        count=count,
    )


def _nulls(col: ColumnSchema, series: pd.Series) -> Violation | None:
    nulls = int(series.isna().sum())
    if not nulls or col.nullable:
        return None
    return Violation(
        column=col.name,
        check="null",
        severity="error",
        message=f"column '{col.name}' has {nulls} null value(s) but the contract "
        "says it is never null",
        count=nulls,
    )


def _out_of_range(col: ColumnSchema, series: pd.Series) -> Violation | None:
    if col.kind != "numeric" or (col.min is None and col.max is None):
        return None
    values = pd.to_numeric(series, errors="coerce")
    low = int((values < col.min).sum()) if col.min is not None else 0
    high = int((values > col.max).sum()) if col.max is not None else 0
    if not (low or high):
        return None
    return Violation(
        column=col.name,
        check="range",
        severity="warn",
        message=f"column '{col.name}': {low + high} value(s) outside [{col.min}, {col.max}]",
        count=low + high,
    )


def _unseen(col: ColumnSchema, series: pd.Series, unseen_is_error: bool) -> Violation | None:
    if col.categories is None or col.kind not in ("categorical", "string"):
        return None
    allowed = set(col.categories)
    present = series.dropna().astype(str)
    unseen_mask = ~present.isin(allowed)
    unseen = int(unseen_mask.sum())
    if not unseen:
        return None
    examples = sorted(set(present[unseen_mask].head(50)))[:5]
    return Violation(
        column=col.name,
        check="category",
        severity="error" if unseen_is_error else "warn",
        message=f"column '{col.name}': {unseen} value(s) not among the "
        f"{len(allowed)} known categories, e.g. {examples}",
        count=unseen,
    )


def _duplicates(col: ColumnSchema, series: pd.Series) -> Violation | None:
    if not col.unique or not series.duplicated().any():
        return None
    dups = int(series.duplicated().sum())
    return Violation(
        column=col.name,
        check="unique",
        severity="error",
        message=f"column '{col.name}' should be unique but has {dups} duplicate(s)",
        count=dups,
    )
