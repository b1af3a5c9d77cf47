"""Drift of a window too big for memory: mergeable binned counts, read batch by batch.

The binned tests (PSI, Jensen-Shannon, Hellinger, and χ² on categories) need
only counts per bin, so a current window can be streamed: each batch adds to
:class:`BinnedCounts` (numeric features into the reference's decile bins,
categories into a count per value), counts of several files or workers merge
by addition, and :meth:`BinnedCounts.report` gives exactly the statistics
:func:`mlcycle.monitor.drift_report` gives on the whole window in memory.
Memory is one batch plus the counts, whatever the window's size.

Example:
    >>> counts = BinnedCounts.from_reference(reference_df, features)
    >>> for batch in pq.ParquetFile("window.parquet").iter_batches(500_000):
    ...     counts.update(batch.to_pandas())
    >>> counts.report("js").drifted
    ['month']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.artifacts import DriftReport, FeatureDrift
from mlcycle.errors import BadInput
from mlcycle.monitor import stattests as st

BINNED = ("js", "psi", "hellinger", "chi2")


@dataclass
class BinnedCounts:
    """Per-feature reference and current counts over fixed bins; ``update`` and ``merge``."""

    features: list[str]
    edges: dict[str, np.ndarray]
    reference: dict[str, dict[object, int] | np.ndarray]
    current: dict[str, dict[object, int] | np.ndarray] = field(default_factory=dict)
    reference_rows: int = 0
    current_rows: int = 0

    @classmethod
    def from_reference(cls, reference: pd.DataFrame, features: Sequence[str]) -> BinnedCounts:
        """Bins from the reference: deciles for numbers, one bin per category for the rest."""
        missing = [f for f in features if f not in reference.columns]
        if missing:
            raise BadInput(
                f"the reference lacks column(s) {', '.join(missing)}",
                "each feature's bins come from its reference values",
                "pick features the reference has",
            )
        edges: dict[str, np.ndarray] = {}
        ref_counts: dict[str, dict[object, int] | np.ndarray] = {}
        for name in features:
            col = reference[name]
            if _numeric(col):
                values = st._numeric(col.to_numpy(), "reference", name)
                edges[name] = st._edges(values, st.N_BINS)
                ref_counts[name] = _bin(values, edges[name])
            else:
                ref_counts[name] = col.dropna().astype(str).value_counts().to_dict()
        out = cls(list(features), edges, ref_counts, reference_rows=len(reference))
        out.current = {
            n: (np.zeros(edges[n].size + 1, dtype=np.int64) if n in edges else {}) for n in features
        }
        return out

    def update(self, batch: pd.DataFrame) -> None:
        """Add one batch of the current window."""
        missing = [f for f in self.features if f not in batch.columns]
        if missing:
            raise BadInput(
                f"the current data lacks column(s) {', '.join(missing)}",
                "every batch needs every feature",
                "fix the batch, or leave the feature out",
            )
        self.current_rows += len(batch)
        for name in self.features:
            col = batch[name]
            if name in self.edges:
                if not _numeric(col):
                    raise BadInput(
                        f"column '{name}' was retyped: {col.dtype}, numbers in the reference",
                        "binned drift compares values of one kind",
                        f"cast '{name}' back to numbers",
                    )
                values = col.to_numpy(dtype=np.float64, na_value=np.nan)
                values = values[np.isfinite(values)]
                counts = self.current[name]
                assert isinstance(counts, np.ndarray)
                counts += _bin(values, self.edges[name])
            else:
                seen = self.current[name]
                assert isinstance(seen, dict)
                for key, n in col.dropna().astype(str).value_counts().items():
                    seen[key] = seen.get(key, 0) + int(n)

    def merge(self, other: BinnedCounts) -> BinnedCounts:
        """Add another worker's or file's current counts (same reference bins)."""
        for name in self.features:
            mine, theirs = self.current[name], other.current[name]
            if isinstance(mine, np.ndarray) and isinstance(theirs, np.ndarray):
                mine += theirs
            elif isinstance(mine, dict) and isinstance(theirs, dict):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
        self.current_rows += other.current_rows
        return self

    def counts(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Aligned reference and current counts of one feature."""
        ref, cur = self.reference[name], self.current[name]
        if isinstance(ref, np.ndarray) and isinstance(cur, np.ndarray):
            return ref, cur
        assert isinstance(ref, dict) and isinstance(cur, dict)
        keys = list(dict.fromkeys([*ref, *cur]))
        return (
            np.array([ref.get(k, 0) for k in keys], dtype=np.int64),
            np.array([cur.get(k, 0) for k in keys], dtype=np.int64),
        )

    def report(self, test: str = "js", threshold: float | None = None) -> DriftReport:
        """Drift per feature from the counts (the default thresholds of each test)."""
        if test not in BINNED:
            raise BadInput(
                f"test '{test}' cannot run on binned counts",
                "streaming keeps counts per bin, not the raw values",
                f"use one of: {', '.join(BINNED)}",
            )
        features = []
        for name in self.features:
            rc, cc = self.counts(name)
            kind = "numeric" if name in self.edges else "categorical"
            if rc.sum() == 0 or cc.sum() == 0:
                features.append(
                    FeatureDrift(
                        feature=name,
                        kind=kind,
                        test="skipped",
                        statistic=0.0,
                        threshold=0.0,
                        drift=False,
                    )
                )
                continue
            statistic, p_value = _from_counts(test, rc, cc)
            limit = threshold if threshold is not None else (0.05 if test == "chi2" else 0.1)
            drift = (p_value < limit) if p_value is not None else statistic >= limit
            features.append(
                FeatureDrift(
                    feature=name,
                    kind=kind,
                    test=test,
                    statistic=statistic,
                    p_value=p_value,
                    threshold=limit,
                    drift=bool(drift),
                )
            )
        return DriftReport(
            reference_rows=self.reference_rows, current_rows=self.current_rows, features=features
        )


def stream_report(
    reference: pd.DataFrame,
    paths: Sequence[str],
    features: Sequence[str],
    *,
    test: str = "js",
    threshold: float | None = None,
    batch_rows: int = 500_000,
    progress: Callable[[str, int | None, int | None], None] | None = None,
) -> DriftReport:
    """Binned drift of Parquet files read batch by batch (memory: one batch plus counts).

    ``progress(text, rows_read, total_rows)`` is called after every batch; the
    total comes from the files' footers, so it is known before reading.

    Example:
        >>> stream_report(reference_df, ["big.parquet"], ["dep_delay"], test="js").drifted
        []
    """
    import pyarrow.parquet as pq

    if test not in BINNED:
        raise BadInput(
            f"test '{test}' cannot run on a streamed window",
            "streaming keeps counts per bin, not the raw values",
            f"use --test with one of: {', '.join(BINNED)}",
        )
    files = [pq.ParquetFile(p) for p in paths]
    for path, f in zip(paths, files, strict=True):
        missing = [c for c in features if c not in f.schema_arrow.names]
        if missing:
            raise BadInput(
                f"{path} lacks column(s) {', '.join(missing)}",
                "every feature tested must be in the current data",
                "add the columns, or leave them out with --columns",
            )
    total = sum(f.metadata.num_rows for f in files)
    if total == 0:
        raise BadInput(
            "the current data has no rows",
            "drift compares the distribution of two samples",
            "point the current at a non-empty file",
        )
    counts = BinnedCounts.from_reference(reference, features)
    done = 0
    for path, f in zip(paths, files, strict=True):
        for batch in f.iter_batches(batch_size=batch_rows, columns=list(features)):
            counts.update(batch.to_pandas())
            done += batch.num_rows
            if progress is not None:
                progress(f"reading {Path(path).name}", done, total)
    return counts.report(test, threshold)


def _numeric(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)


def _from_counts(test: str, rc: np.ndarray, cc: np.ndarray) -> tuple[float, float | None]:
    """The statistics of :mod:`.stattests`, from counts instead of samples."""
    p, q = rc / rc.sum(), cc / cc.sum()
    if test == "js":
        return st.js_distance(p, q), None
    if test == "hellinger":
        return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2.0)), None
    if test == "psi":
        p = np.where(p == 0.0, st.EPSILON, p)
        q = np.where(q == 0.0, st.EPSILON, q)
        return float(np.sum((q - p) * np.log(q / p))), None
    seen = (rc + cc) > 0
    rc, cc = rc[seen], cc[seen]
    if rc.size < 2:
        return 0.0, 1.0
    from scipy import stats  # only chi2 needs SciPy; its import costs ~0.5 s (see stattests)

    with np.errstate(divide="ignore", invalid="ignore"):
        res = stats.chisquare(cc, rc * (cc.sum() / rc.sum()))
    return float(res.statistic), float(res.pvalue)
