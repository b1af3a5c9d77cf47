"""Validating a frame against the data contract before it becomes a dataset version.

:func:`mlcycle.schema.check_frame` does the per-column checks that serving and
monitoring share (missing columns, kinds, nulls, ranges, categories,
uniqueness); a dataset version must pass a few more: no used column entirely
null, no nulls in the target, and no column the contract does not know (a warning:
the column is dropped from the model's view, which may be a mistake).

:func:`validate_version` is the stage function: a stored version's rows, its
record, the previous valid version and the partitions it added → the report
(contract, expectations, and what ingest noticed in the new partitions).

Example:
    >>> report = validate_frame(df, schema)
    >>> report.ok, [v.message for v in report.errors]
    (True, [])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlcycle.artifacts import DatasetVersion, ValidationReport
from mlcycle.data.expect import check_expectations
from mlcycle.schema import Schema, Violation, check_frame
from mlcycle.spec import Expectation

if TYPE_CHECKING:
    from mlcycle.data.landing import Partition


def validate_frame(df: pd.DataFrame, schema: Schema) -> ValidationReport:
    """Every way ``df`` breaks ``schema``; errors mean the pipeline must stop.

    Besides :func:`~mlcycle.schema.check_frame`: a column the contract uses (any
    role but "ignored") that is entirely null is an error, a null target is an
    error, a column absent from the contract is a warning ("extra"), and a
    column name that appears twice is an error.

    Example:
        >>> schema = Schema(columns=[ColumnSchema(name="y", kind="numeric", role="target")])
        >>> report = validate_frame(pd.DataFrame({"y": [1.0, None], "z": [1, 2]}), schema)
        >>> [(v.column, v.check, v.severity) for v in report.violations]
        [('y', 'null', 'error'), ('z', 'extra', 'warn')]
    """
    violations: list[Violation] = []
    duplicated = df.columns[df.columns.duplicated()].unique()
    for name in duplicated:
        violations.append(
            Violation(
                column=str(name),
                check="extra",
                severity="error",
                message=f"column name '{name}' appears "
                f"{int((df.columns == name).sum())} times; only the first is checked",
            )
        )
    if len(duplicated):
        # check_frame needs one series per name.
        df = df.loc[:, ~df.columns.duplicated()]

    found = check_frame(df, schema)
    null_errors = {v.column for v in found if v.check == "null" and v.severity == "error"}
    # An all-null column gets one clear error instead of check_frame's generic count.
    all_null = set()
    if len(df):
        for col in schema.columns:
            if col.role != "ignored" and col.name in df.columns and df[col.name].isna().all():
                all_null.add(col.name)
    violations.extend(v for v in found if not (v.check == "null" and v.column in all_null))
    for col in schema.columns:
        if col.name in all_null:
            violations.append(
                Violation(
                    column=col.name,
                    check="null",
                    severity="error",
                    message=f"column '{col.name}' ({col.role}) is entirely null "
                    f"({len(df)} rows); a model cannot learn from or be checked on it",
                    count=len(df),
                )
            )
        elif col.role == "target" and col.name in df.columns and col.name not in null_errors:
            nulls = int(df[col.name].isna().sum())
            if nulls:
                violations.append(
                    Violation(
                        column=col.name,
                        check="null",
                        severity="error",
                        message=f"target column '{col.name}' has {nulls} null value(s); "
                        "rows without a label cannot train or evaluate a model",
                        count=nulls,
                    )
                )

    known = set(schema.names())
    for name in df.columns:
        if str(name) not in known:
            violations.append(
                Violation(
                    column=str(name),
                    check="extra",
                    severity="warn",
                    message=f"column '{name}' is not in the contract; it is not used",
                )
            )
    return ValidationReport(rows=len(df), violations=violations)


def validate_version(
    df: pd.DataFrame,
    record: DatasetVersion,
    *,
    expectations: Sequence[Expectation],
    previous: DatasetVersion | None,
    added: Sequence[Partition],
    id_column: str | None,
) -> ValidationReport:
    """Everything wrong with a dataset version: its contract, the spec's expectations
    (against the previous valid version's profile), and the malformed lines and
    repeated ids ingest dropped from the partitions it ``added``.

    Example:
        >>> report = validate_version(df, record, expectations=spec.data.expectations,
        ...                           previous=None, added=parts, id_column="id")
        >>> report.ok
        True
    """
    violations = list(validate_frame(df, record.schema_).violations)
    violations += check_expectations(
        df, expectations, record.profile, previous.profile if previous else None
    )
    for part in added:
        violations += _ingest_warnings(part.details, id_column)
    return ValidationReport(rows=len(df), violations=violations)


def _ingest_warnings(details: dict[str, Any], id_column: str | None) -> list[Violation]:
    found = []
    if details.get("bad_line_count"):
        found.append(
            Violation(
                column=None,
                check="malformed",
                severity="warn",
                message=f"{details['bad_line_count']} malformed CSV line(s) were skipped at "
                f"ingest, e.g. lines {details.get('bad_lines', [])[:5]}",
                count=int(details["bad_line_count"]),
            )
        )
    if details.get("duplicates"):
        found.append(
            Violation(
                column=id_column,
                check="duplicate",
                severity="warn",
                message=f"{details['duplicates']} row(s) repeating an id were dropped at ingest",
                count=int(details["duplicates"]),
            )
        )
    return found
