"""What the data and monitoring pages read: dataset versions, one version, the diff
between two versions, a version's full data report, monitor windows and alerts.

Lists come from the store's typed listings (:mod:`mlcycle.store.listings`),
records and frames from the catalog, and the comparisons from the data stage's
own code (:mod:`mlcycle.data.compare`, :mod:`mlcycle.data.report`): the
dashboard shows what ``mlcycle data …`` computes, it does not compute its own.

Example:
    >>> diff = dataset_diff(project, "61340b", "b10c27")
    >>> diff["rows"]
    {'added': 50, 'removed': 100, 'kept': 1492}
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mlcycle.errors import BadInput
from mlcycle.store import Store, listings, queries

if TYPE_CHECKING:
    from mlcycle.artifacts import ColumnProfile
    from mlcycle.pipeline.project import Project

# A column whose distribution moved at least this far (Jensen–Shannon distance, the
# unit of `mlcycle.data.compare`) is marked as changed in a diff.
CHANGED_DISTANCE = 0.1


# --- dataset versions ------------------------------------------------------------------


def dataset_versions(store: Store) -> list[dict[str, Any]]:
    """Every dataset version, newest first, with its validation status and why; each
    with ``previous``: the next older version of the same source (for a diff link)."""
    found = [asdict(v) for v in listings.dataset_versions(store)]
    older: dict[str, str] = {}
    for v in reversed(found):  # oldest first: remember each source's last version
        v["previous"] = older.get(v["source_name"])
        older[v["source_name"]] = v["id"]
    return found


def dataset_detail(store: Store, ref: str) -> dict[str, Any]:
    """A dataset version: its record, profile, validation findings, what used it, and
    the other versions it can be compared with."""
    artifact_id = store.resolve(ref, kind="dataset")
    record = store.record(artifact_id)
    versions = dataset_versions(store)
    row = next(v for v in versions if v["id"] == artifact_id)
    status = {k: row[k] for k in ("status", "reason", "validation_id")}
    violations: list[dict[str, Any]] = []
    if row["validation_id"] and store.has(row["validation_id"]):
        violations = store.record(row["validation_id"]).get("violations", [])
    columns = []
    for col in record.get("profile", {}).get("columns", []):
        count, nulls = col.get("count", 0), col.get("nulls", 0)
        columns.append(
            {
                "name": col["name"],
                "kind": col["kind"],
                "missing": nulls / (count + nulls) if count + nulls else 0.0,
                "distinct": col.get("distinct"),
                "min": col.get("min"),
                "median": (col.get("quantiles") or {}).get("0.5"),
                "max": col.get("max"),
                "top": list((col.get("top") or {}).items())[:3],
            }
        )
    used = queries.descendants(store, artifact_id)
    return {
        "id": artifact_id,
        "record": record,
        "status": status,
        "violations": violations,
        "columns": columns,
        "models": queries.versions_of(store, [u["id"] for u in used if u["kind"] == "bundle"]),
        "others": [v for v in versions if v["id"] != artifact_id],
        "previous": row["previous"],
    }


def _missing(col: ColumnProfile | None) -> float | None:
    if col is None:
        return None
    total = col.count + col.nulls
    return col.nulls / total if total else 0.0


def _column_change(
    name: str, old: ColumnProfile | None, new: ColumnProfile | None, distance: float | None
) -> dict[str, Any]:
    """One row of a diff's column table: the profile's figures before and after."""

    def pair(attr: str) -> tuple[Any, Any]:
        return (getattr(old, attr, None), getattr(new, attr, None))

    median = (
        (old.quantiles.get("0.5") if old else None),
        (new.quantiles.get("0.5") if new else None),
    )
    presence = "added" if old is None else "removed" if new is None else ""
    kinds = pair("kind")
    changed = bool(presence) or kinds[0] != kinds[1] or (distance or 0.0) >= CHANGED_DISTANCE
    return {
        "name": name,
        "presence": presence,
        "kind": kinds,
        "count": pair("count"),
        "missing": (_missing(old), _missing(new)),
        "mean": pair("mean"),
        "median": median,
        "distinct": pair("distinct"),
        "distance": distance,
        "changed": changed,
    }


def dataset_diff(project: Project, old_ref: str, new_ref: str) -> dict[str, Any]:
    """What changed from dataset version ``old_ref`` to ``new_ref``: rows added and
    removed (by the problem's id column when both have it, else by content), the
    data contract's changes, columns added/removed/retyped in the data, and per
    column the profile before and after with the distribution's distance.

    Both versions' frames are read (rows can only be matched on rows); the
    distances need only the stored profiles.

    Example:
        >>> dataset_diff(project, "61340b", "b10c27")["schema"]
        []
    """
    from mlcycle.data.compare import data_changes, profile_distances, row_changes, schema_changes

    store, catalog = project.store, project.catalog
    old_id = store.resolve(old_ref, kind="dataset")
    new_id = store.resolve(new_ref, kind="dataset")
    if old_id == new_id:
        raise BadInput(
            "a version compared with itself",
            "a diff needs two different dataset versions",
            "pick another version to compare with on the version's page",
        )
    old, new = catalog.dataset(old_id), catalog.dataset(new_id)
    id_column = project.spec.problem.id_column
    old_frame, new_frame = catalog.dataset_frame(old_id), catalog.dataset_frame(new_id)
    rows = row_changes(old_frame, new_frame, id_column)
    distances = profile_distances(old.profile, new.profile)
    before = {c.name: c for c in old.profile.columns}
    after = {c.name: c for c in new.profile.columns}
    names = [*after, *(n for n in before if n not in after)]
    columns = [_column_change(n, before.get(n), after.get(n), distances.get(n)) for n in names]
    versions = {v.id: asdict(v) for v in listings.dataset_versions(store, [old_id, new_id])}
    return {
        "old": versions[old_id],
        "new": versions[new_id],
        "rows": rows,
        "matched_by": id_column if id_column in old_frame and id_column in new_frame else None,
        "schema": schema_changes(old.schema_, new.schema_),
        "data": data_changes(old_frame, new_frame),
        "columns": columns,
        "changed": sum(1 for c in columns if c["changed"]),
        "threshold": CHANGED_DISTANCE,
    }


# Rendered reports by dataset id: a version is immutable, so its report is too. A few
# are kept (each is some hundred KiB) so a page reloaded does not rebuild its report.
_REPORTS: OrderedDict[str, str] = OrderedDict()
_REPORTS_LOCK = threading.Lock()
_REPORTS_KEPT = 8


def data_report_html(project: Project, ref: str) -> str:
    """The full data report of a version (what ``mlcycle data report`` writes), as HTML.

    Example:
        >>> data_report_html(project, "61340b").startswith("<!doctype html>")
        True
    """
    from mlcycle.artifacts import ValidationReport
    from mlcycle.data.report import render_report

    store, catalog = project.store, project.catalog
    artifact_id = store.resolve(ref, kind="dataset")
    status = listings.dataset_versions(store, [artifact_id])[0].status
    key = f"{artifact_id}:{status}"  # accepting a quarantined version changes its badge
    with _REPORTS_LOCK:
        if key in _REPORTS:
            _REPORTS.move_to_end(key)
            return _REPORTS[key]
    validation_id = listings.validation_of(store, artifact_id)
    validation = (
        ValidationReport.model_validate(store.record(validation_id)) if validation_id else None
    )
    html = render_report(
        catalog.dataset_frame(artifact_id),
        catalog.dataset(artifact_id),
        project.spec.problem,
        validation=validation,
        status=status,
        title=f"{project.name} · dataset {artifact_id[:12]}",
    )
    with _REPORTS_LOCK:
        _REPORTS[key] = html
        while len(_REPORTS) > _REPORTS_KEPT:
            _REPORTS.popitem(last=False)
    return html


# --- monitoring ------------------------------------------------------------------------


def monitored_models(store: Store) -> list[str]:
    """Models that have monitor windows or alerts."""
    return listings.monitored_models(store)


def monitor_windows(store: Store, model: str) -> list[dict[str, Any]]:
    """Every window of ``model`` in time order: key, version, rows and metrics."""
    return [asdict(w) for w in listings.monitor_windows(store, model)]


def alerts(store: Store, models: list[str] | None = None) -> list[dict[str, Any]]:
    """Every stored alert of these models (default: all monitored), newest first."""
    from mlcycle.monitor.alerts import list_alerts

    found = [a for m in (models or monitored_models(store)) for a in list_alerts(store, m)]
    return sorted(found, key=lambda a: (a["created_at"], a["id"]), reverse=True)


def finite(value: Any) -> float | None:
    """A float fit for a chart: ``None`` for missing, NaN or infinite values."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
