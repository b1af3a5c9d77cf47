"""What ``mlcycle init --data`` proposes for a frame: the records the scaffold modules share.

:func:`mlcycle.data.scaffold.propose` fills a :class:`Proposal` (each decision with
its reason), :mod:`mlcycle.data.scaffold_leakage` adds its :class:`ColumnNote`
suspects to it, and :func:`mlcycle.data.scaffold_render.render_spec` writes it as a
commented ``mlcycle.yaml``. Plain data: nothing here reads or decides.

Example:
    >>> p = Proposal(target="y", task="binary", task_why="two values", metric="roc_auc",
    ...              metric_why="not rare", rows=300)
    >>> p.notes.append(ColumnNote("refund", "leakage_name", "known after the outcome"))
    >>> p.excluded
    ['refund']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mlcycle.spec import Task

__all__ = ["ColumnNote", "Issue", "Proposal"]

Issue = Literal[
    "all_null",
    "constant",
    "id_like",
    "high_cardinality",
    "date",
    "leakage_name",
    "leakage_purity",
]


@dataclass(frozen=True)
class ColumnNote:
    """A column a person must look at: what is wrong with it, why, and whether it is excluded.

    Example:
        >>> ColumnNote("country", "constant", "only the value 'FR'", exclude=True).issue
        'constant'
    """

    column: str
    issue: Issue
    detail: str
    exclude: bool = True

    @property
    def title(self) -> str:
        """The issue as a person reads it (``LEAKAGE SUSPECT (name)``)."""
        return _TITLES[self.issue]


_TITLES: dict[str, str] = {
    "all_null": "all null",
    "constant": "constant",
    "id_like": "id-like",
    "high_cardinality": "very high cardinality",
    "date": "raw date",
    "leakage_name": "LEAKAGE SUSPECT (by name)",
    "leakage_purity": "LEAKAGE SUSPECT (predicts the target alone)",
}


@dataclass
class Proposal:
    """What :func:`propose` decided for one frame, each decision with its reason.

    Example:
        >>> p = propose(df, "churned")  # mlcycle.data.scaffold.propose
        >>> p.excluded  # columns written to data.features.exclude, each with a comment
        ['refund_amount']
    """

    target: str
    task: Task
    task_why: str
    metric: str
    metric_why: str
    rows: int
    positive_label: str | int | bool | None = None
    positive_why: str = ""
    id_column: str | None = None
    id_why: str = ""
    timestamp_column: str | None = None
    timestamp_why: str = ""
    group_column: str | None = None  # an entity column (the split's comment says why)
    split: Literal["time", "random", "stratified", "group"] = "random"
    split_why: str = ""
    null_targets: int = 0
    notes: list[ColumnNote] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def excluded(self) -> list[str]:
        """Columns to leave out of the features (each has a note saying why)."""
        return list(dict.fromkeys(n.column for n in self.notes if n.exclude))
