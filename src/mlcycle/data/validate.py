"""Validating a frame against the data contract before it becomes a dataset version.

:func:`mlcycle.schema.check_frame` does the per-column checks that serving and
monitoring share (missing columns, kinds, nulls, ranges, categories,
uniqueness); a dataset version must pass a few more: no used column entirely
null, no nulls in the target, and no column the contract does not know (a warning:
the column is dropped from the model's view, which may be a mistake).

Example:
    >>> report = validate_frame(df, schema)
    >>> report.ok, [v.message for v in report.errors]
    (True, [])
"""

from __future__ import annotations

import pandas as pd

from mlcycle.artifacts import ValidationReport
from mlcycle.schema import Schema, Violation, check_frame


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
