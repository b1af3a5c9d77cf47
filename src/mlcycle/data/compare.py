"""Comparing dataset versions: per-column distribution distance from profiles, and diffs.

The distance works on profiles alone (no raw rows), so any two versions, or a
version and a monitoring window, can be compared long after the rows are gone:
numeric columns are rebinned onto a common grid through their cumulative
histograms, text columns compared over their top values plus an "other" bucket.
The number is the Jensen–Shannon distance (base 2): 0 for identical
distributions, 1 for disjoint ones.

Example:
    >>> column_distance(old.column("dep_delay"), new.column("dep_delay"))
    0.031
    >>> diff = diff_versions(old_record, new_record)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import ColumnProfile, Profile
from mlcycle.schema import Schema

GRID = 40


def column_distance(a: ColumnProfile, b: ColumnProfile) -> float | None:
    """Jensen–Shannon distance between two windows of one column (None if not comparable).

    Example:
        >>> column_distance(p.column("x"), p.column("x"))
        0.0
    """
    if a.count == 0 or b.count == 0 or a.kind != b.kind:
        return None
    if a.kind == "numeric":
        pa_, pb = _numeric_masses(a, b)
    elif a.kind == "datetime":
        return None
    else:
        pa_, pb = _text_masses(a, b)
    if pa_ is None or pb is None:
        return None
    return js_distance(pa_, pb)


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two mass vectors."""
    p = p / p.sum() if p.sum() else p
    q = q / q.sum() if q.sum() else q
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))


def _cumulative(p: ColumnProfile, grid: np.ndarray) -> np.ndarray:
    assert p.histogram is not None
    below = np.concatenate([[0], np.cumsum(p.histogram.counts)]).astype(np.float64)
    return np.interp(grid, p.histogram.edges, below, left=0.0, right=below[-1])


def _numeric_masses(a: ColumnProfile, b: ColumnProfile) -> tuple[Any, Any]:
    if a.histogram is None or b.histogram is None:
        return None, None
    low = min(a.histogram.edges[0], b.histogram.edges[0])
    high = max(a.histogram.edges[-1], b.histogram.edges[-1])
    if low == high:
        return np.ones(1), np.ones(1)
    grid = np.linspace(low, high, GRID + 1)
    return np.diff(_cumulative(a, grid)), np.diff(_cumulative(b, grid))


def _text_masses(a: ColumnProfile, b: ColumnProfile) -> tuple[Any, Any]:
    keys = sorted(set(a.top) | set(b.top))
    ma = [a.top.get(k, 0) for k in keys] + [max(0, a.count - sum(a.top.values()))]
    mb = [b.top.get(k, 0) for k in keys] + [max(0, b.count - sum(b.top.values()))]
    return np.asarray(ma, dtype=np.float64), np.asarray(mb, dtype=np.float64)


def profile_distances(old: Profile, new: Profile) -> dict[str, float | None]:
    """Distance per column present in both profiles."""
    mine = {c.name: c for c in old.columns}
    return {c.name: column_distance(mine[c.name], c) for c in new.columns if c.name in mine}


def schema_changes(old: Schema, new: Schema) -> list[str]:
    """What changed in the contract between two versions, one line per change."""
    changes: list[str] = []
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    for name in after:
        if name not in before:
            changes.append(f"+ column '{name}' ({after[name].kind})")
    for name in before:
        if name not in after:
            changes.append(f"- column '{name}' ({before[name].kind})")
    for name, col in after.items():
        prev = before.get(name)
        if prev is None:
            continue
        if prev.kind != col.kind:
            changes.append(f"~ '{name}' kind {prev.kind} → {col.kind}")
        if prev.role != col.role:
            changes.append(f"~ '{name}' role {prev.role} → {col.role}")
        if prev.nullable != col.nullable:
            changes.append(f"~ '{name}' nullable {prev.nullable} → {col.nullable}")
        if prev.categories != col.categories and col.categories is not None:
            new_cats = sorted(set(col.categories) - set(prev.categories or []))
            gone = sorted(set(prev.categories or []) - set(col.categories))
            if new_cats or gone:
                changes.append(f"~ '{name}' categories +{new_cats[:10]} -{gone[:10]}")
        if (prev.min, prev.max) != (col.min, col.max) and col.kind == "numeric":
            changes.append(f"~ '{name}' range [{prev.min}, {prev.max}] → [{col.min}, {col.max}]")
    return changes


def row_changes(
    old: pd.DataFrame, new: pd.DataFrame, id_column: str | None = None
) -> dict[str, int]:
    """Rows added and removed between two frames (by id when there is one, else by content).

    Example:
        >>> row_changes(pd.DataFrame({"i": [1, 2]}), pd.DataFrame({"i": [2, 3]}), "i")
        {'added': 1, 'removed': 1, 'kept': 1}
    """
    a: pd.Index
    b: pd.Index
    if id_column and id_column in old.columns and id_column in new.columns:
        a = pd.Index(old[id_column].astype(str))
        b = pd.Index(new[id_column].astype(str))
    else:
        common = [c for c in new.columns if c in old.columns]
        a = pd.Index(pd.util.hash_pandas_object(old[common], index=False))
        b = pd.Index(pd.util.hash_pandas_object(new[common], index=False))
    kept = int(b.isin(a).sum())
    return {"added": len(b) - kept, "removed": int((~a.isin(b)).sum()), "kept": kept}


def data_changes(old: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    """Columns added, removed or retyped between two frames (what the data holds,
    whatever the contract says).

    Example:
        >>> data_changes(pd.DataFrame({"a": [1]}), pd.DataFrame({"a": ["1"], "b": [2]}))
        ["+ data column 'b' (numeric)", "~ data column 'a' numeric → string"]
    """
    from mlcycle.schema import kind_of

    out = [f"+ data column '{c}' ({kind_of(new[c])})" for c in new.columns if c not in old]
    out += [f"- data column '{c}' ({kind_of(old[c])})" for c in old.columns if c not in new]
    for name in new.columns:
        if name in old.columns:
            before, after = kind_of(old[name]), kind_of(new[name])
            if before != after:
                out.append(f"~ data column '{name}' {before} → {after}")
    return out
