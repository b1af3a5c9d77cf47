"""Input checks of the model runtime: JSON records, columns and frames against the bundle's schema.

Inputs are checked against the bundle's ``schema.json`` (the same contract the
data stage froze, via :func:`mlcycle.schema.check_frame`) and coerced to the
dtypes a training frame has, so no input can make the model itself fail. A
request gets one error naming every bad field; a batch chunk gets its bad
rows split off with a reason each.

:class:`InputChecks` is a mixin of :class:`~mlcycle.serve.model.runtime.ModelRuntime`
(it needs ``meta``, ``input_schema`` and ``features``).

Example:
    >>> X = rt.validate_records([{"dep_delay": 12.0, "distance": 733, "carrier": "AA"}])
    >>> rt.check_rows(chunk).reasons[:1]
    ["carrier: unseen category 'ZZ'"]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcycle.artifacts import BundleMeta
from mlcycle.schema import Schema, Violation, check_frame
from mlcycle.serve.model.coerce import (
    EXPECTED,
    TEXT_KINDS,
    InputError,
    coerce_column,
    distinct,
    frame_columns,
    rows_text,
    show,
)
from mlcycle.serve.model.ranges import outside_masks, plain_number, range_text


@dataclass(frozen=True)
class RowCheck:
    """Result of :meth:`ModelRuntime.check_rows`: good rows to predict, bad rows with reasons.

    ``frame`` holds the valid rows only (coerced, fresh ``RangeIndex``);
    ``rejected`` is a boolean mask over the input rows; ``reasons`` has one
    text per rejected row, in input order.
    """

    frame: pd.DataFrame
    rejected: np.ndarray
    reasons: list[str]


@dataclass
class _Problem:
    """One field's bad rows: positions, the offending values, and what was wrong."""

    field: str
    check: Literal["type", "null", "category", "range"]
    rows: np.ndarray
    values: list[Any]
    expected: str = ""  # type: the kind expected; range: the training range

    def reason(self, i: int) -> str:
        """Short per-row text, for a batch reject file."""
        value = show(self.values[i])
        if self.check == "type":
            return f"{self.field}: expected {self.expected}, got {value}"
        if self.check == "null":
            return f"{self.field}: null, but the contract says it is never null"
        if self.check == "range":
            return f"{self.field}: {value} is outside the training range {self.expected}"
        return f"{self.field}: unseen category {value}"

    def message(self, total: int) -> str:
        """Per-field text summarising every bad row, for an HTTP 422."""
        count = len(self.rows)
        where = rows_text(self.rows, total)
        if self.check == "type":
            shown = ", ".join(show(v) for v in distinct(self.values))
            return f"'{self.field}' should be {self.expected} but got {shown} ({where})"
        if self.check == "null":
            return f"'{self.field}' is null in {count} row(s) ({where}) but it may never be null"
        if self.check == "range":
            shown = ", ".join(show(v) for v in distinct(self.values))
            return (
                f"'{self.field}' is outside the training range {self.expected} ({where}): "
                f"{shown}; this model refuses such values (serve.out_of_range: reject)"
            )
        shown = ", ".join(show(v) for v in distinct(self.values))
        noun = "category" if count == 1 else "categories"
        return f"'{self.field}' has {count} unseen {noun} ({where}): {shown}"


class InputChecks:
    """Validation methods of :class:`~mlcycle.serve.model.runtime.ModelRuntime`."""

    meta: BundleMeta
    input_schema: Schema
    features: list[str]
    out_of_range: str  # the policy in force: flag or reject
    ranges: dict[str, tuple[float, float]]  # checked numeric features → (low, high)

    def validate_records(self, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        """Check JSON-like records and return the model's input frame.

        A key missing from every record is a missing column; missing from
        some records it is a null. Extra keys are ignored. Raises
        :class:`InputError` listing every bad field.

        Example:
            >>> rt.validate_records([{"dep_delay": None, "distance": 200, "carrier": "AA"}])
        """
        present: set[str] = set()
        for row in rows:
            if not isinstance(row, Mapping):
                raise InputError(
                    [{"field": None, "error": f"each record must be an object, got {show(row)}"}],
                    what="a record is not a JSON object",
                )
            present.update(row.keys())
        columns = {
            name: [row.get(name) for row in rows] for name in self.features if name in present
        }
        return self.validate_columns(columns, len(rows))

    def validate_columns(
        self, columns: Mapping[str, Sequence[Any]], rows: int | None = None
    ) -> pd.DataFrame:
        """Check columnar input (name → values) and return the model's input frame.

        Example:
            >>> rt.validate_columns({"distance": [200, 300], "carrier": ["AA", "DL"], ...})
        """
        lengths = {name: len(columns[name]) for name in self.features if name in columns}
        if rows is None:
            rows = next(iter(lengths.values()), 0)
        uneven = {name: n for name, n in lengths.items() if n != rows}
        if uneven:
            raise InputError(
                [
                    {"field": name, "error": f"'{name}' has {n} value(s) but the batch has {rows}"}
                    for name, n in uneven.items()
                ],
                what="input columns have different lengths",
            )
        frame, problems = self._coerce_all(columns, rows, from_text=False)
        return self._finish(frame, problems)

    def validate_frame(self, df: pd.DataFrame, *, from_text: bool = False) -> pd.DataFrame:
        """Check a DataFrame and return the model's input frame (features only, in order).

        ``from_text`` parses text cells (numbers, true/false) as a CSV reader
        would; otherwise a string in a numeric column is an error.

        Example:
            >>> X = rt.validate_frame(pd.read_parquet("new_flights.parquet"))
        """
        frame, problems = self._coerce_all(frame_columns(df), len(df), from_text=from_text)
        return self._finish(frame, problems)

    def check_rows(self, df: pd.DataFrame, *, from_text: bool = False) -> RowCheck:
        """Split a frame into valid rows (coerced) and rejected rows with reasons.

        A missing column still raises :class:`InputError`: no row can be
        predicted without it. Used by the batch job.

        Example:
            >>> check = rt.check_rows(chunk)
            >>> check.reasons[:1]
            ["carrier: unseen category 'ZZ'"]
        """
        n = len(df)
        frame, bad = self._coerce_all(frame_columns(df), n, from_text=from_text)
        problems = self._row_problems(frame, bad)
        rejected = np.zeros(n, dtype=bool)
        per_row: dict[int, list[str]] = {}
        for problem in problems:
            rejected[problem.rows] = True
            for i, row in enumerate(problem.rows.tolist()):
                per_row.setdefault(row, []).append(problem.reason(i))
        reasons = ["; ".join(per_row[i]) for i in np.flatnonzero(rejected).tolist()]
        good = frame if not rejected.any() else frame.loc[~rejected].reset_index(drop=True)
        if len(good):
            errors = self._contract_errors(good)
            if errors:
                # Only reachable if the shared contract grows a check this module
                # does not know row by row; refuse rather than predict on it.
                raise InputError([{"field": v.column, "error": v.message} for v in errors])
        return RowCheck(frame=good, rejected=rejected, reasons=reasons)

    def _coerce_all(
        self, columns: Mapping[str, Any], rows: int, *, from_text: bool
    ) -> tuple[pd.DataFrame, dict[str, _Problem]]:
        """Coerce every feature to its kind; wrong-typed cells become null and are reported."""
        if rows == 0:
            raise InputError(
                [{"field": None, "error": "the batch has no rows"}],
                what="empty batch",
                why="there is nothing to predict",
                fix="send at least one row",
            )
        missing = [c for c in self.input_schema.columns if c.name not in columns]
        if missing:
            raise InputError(
                [
                    {"field": c.name, "error": f"column '{c.name}' ({c.kind}) is missing"}
                    for c in missing
                ],
                what=f"missing input column(s): {', '.join(c.name for c in missing)}",
                fix=f"send every feature the model needs: {', '.join(self.features)}",
            )
        out: dict[str, Any] = {}
        bad: dict[str, _Problem] = {}
        for col in self.input_schema.columns:
            values, mask, bad_values = coerce_column(columns[col.name], col, from_text)
            out[col.name] = values
            if mask.any():
                bad[col.name] = _Problem(
                    col.name, "type", np.flatnonzero(mask), bad_values, EXPECTED[col.kind]
                )
        return pd.DataFrame(out, index=pd.RangeIndex(rows)), bad

    def _row_problems(self, frame: pd.DataFrame, bad: dict[str, _Problem]) -> list[_Problem]:
        """Type, null and unseen-category problems of each row, field by field."""
        problems: list[_Problem] = []
        reject_unseen = self.meta.unseen_category == "reject"
        outside = self._rejected_ranges(frame)
        for col in self.input_schema.columns:
            typed = bad.get(col.name)
            if typed is not None:
                problems.append(typed)
            series = frame[col.name]
            nulls = series.isna().to_numpy().copy()
            if typed is not None:
                nulls[typed.rows] = False
            if not col.nullable and nulls.any():
                rows = np.flatnonzero(nulls)
                problems.append(_Problem(col.name, "null", rows, [None] * len(rows)))
            if reject_unseen and col.categories is not None and col.kind in TEXT_KINDS:
                unseen = ~series.isin(col.categories).to_numpy() & ~series.isna().to_numpy()
                if unseen.any():
                    rows = np.flatnonzero(unseen)
                    problems.append(
                        _Problem(col.name, "category", rows, series.iloc[rows].tolist())
                    )
            if col.name in outside:
                rows = np.flatnonzero(outside[col.name])
                low, high = self.ranges[col.name]
                values = [plain_number(v) for v in series.iloc[rows].tolist()]
                problems.append(_Problem(col.name, "range", rows, values, range_text(low, high)))
        return problems

    def _rejected_ranges(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Under the reject policy: rows outside the training range, by feature (else none)."""
        if self.out_of_range != "reject" or not self.ranges:
            return {}
        return outside_masks(frame, self.ranges)

    def _finish(self, frame: pd.DataFrame, bad: dict[str, _Problem]) -> pd.DataFrame:
        """Let the shared contract decide; on any error explain it row by row."""
        errors = self._contract_errors(frame)
        if not bad and not errors and not self._rejected_ranges(frame):
            return frame
        by_field: dict[str | None, list[str]] = {}
        for p in self._row_problems(frame, bad):
            by_field.setdefault(p.field, []).append(p.message(len(frame)))
        for v in errors:
            # A contract error this module cannot pin to rows: pass its own words on.
            if v.column not in by_field:
                by_field.setdefault(v.column, []).append(v.message)
        raise InputError(
            [{"field": f, "error": "; ".join(msgs)} for f, msgs in by_field.items()],
            what=f"invalid value(s) in: {', '.join(str(f) for f in by_field)}",
        )

    def _contract_errors(self, frame: pd.DataFrame) -> list[Violation]:
        """The shared contract check (:func:`check_frame`) on coerced rows."""
        violations = check_frame(
            frame,
            self.input_schema,
            roles=("feature",),
            ranges=False,
            unseen_is_error=self.meta.unseen_category == "reject",
        )
        # Uniqueness describes a dataset, not a request: a batch may repeat values.
        return [v for v in violations if v.severity == "error" and v.check != "unique"]
