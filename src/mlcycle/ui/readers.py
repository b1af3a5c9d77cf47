"""What the dashboard reads, as plain dicts: through the registry, the store's queries,
the tracking query API and monitor's readers.

Routes and templates never write SQL. Where no typed reader exists yet (the
list of pipeline runs, dataset versions, monitor windows without opening a
``Monitor``, one page of tracked runs with only the columns shown), the query
is here, in SQLAlchemy Core over ``store/tables.py``, each marked
``# no typed reader yet`` so it can move to its owner later.

Example:
    >>> page = runs_page(store, RunQuery(filter="metrics.valid_roc_auc > 0.7"))
    >>> [r["name"] for r in page.rows][:2]
    ['hgb', 'baseline_prior']
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput, NotFound
from mlcycle.registry.models import ModelRef, Registry
from mlcycle.store import Store, queries
from mlcycle.store import tables as t
from mlcycle.train.tracking import query as tracking

ROLES = ("champion", "challenger")


# --- pipeline runs ---------------------------------------------------------------------


def pipeline_runs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The newest pipeline runs, each with its steps (status, seconds, cache hit, error).

    Example:
        >>> [s["step"] for s in pipeline_runs(store, 1)[0]["steps"]][:2]
        ['ingest', 'validate']
    """
    # no typed reader yet: RunLog writes these tables but has no listing.
    with store.engine.connect() as conn:
        runs = [
            dict(r)
            for r in conn.execute(
                sa.select(t.pipeline_runs)
                .order_by(t.pipeline_runs.c.started_at.desc())
                .limit(limit)
            ).mappings()
        ]
        ids = [r["id"] for r in runs]
        # The step's summary is in step_runs.outputs; the artifacts it produced (or
        # took from cache) are the cache entry's outputs, as in queries.run_outputs.
        steps = (
            conn.execute(
                sa.select(t.step_runs, t.step_cache.c.outputs.label("artifacts"))
                .select_from(
                    t.step_runs.outerjoin(
                        t.step_cache, t.step_cache.c.cache_key == t.step_runs.c.cache_key
                    )
                )
                .where(t.step_runs.c.pipeline_run_id.in_(ids))
                .order_by(t.step_runs.c.id)
            )
            .mappings()
            .all()
            if ids
            else []
        )
    by_run: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for s in steps:
        step = dict(s)
        step["summary"] = json.loads(step.pop("outputs") or "{}")
        step["artifacts"] = json.loads(step["artifacts"]) if step.get("artifacts") else {}
        by_run[step["pipeline_run_id"]].append(step)
    for run in runs:
        run["steps"] = by_run[run["id"]]
        run["cached"] = sum(1 for s in run["steps"] if s["status"] == "cached")
        run["seconds"] = sum(s["duration_s"] or 0 for s in run["steps"])
    return runs


# --- models ----------------------------------------------------------------------------


def open_bundle(store: Store, bundle_id: str) -> Bundle:
    """The bundle's folder, opened but not re-hashed.

    The dashboard reads only the JSON and Markdown evidence and never unpickles
    the model, so it skips ``Bundle.verify`` (which re-hashes every file and
    would cost more than the whole page).
    """
    return Bundle.open(store.path(bundle_id))


def models_overview(store: Store) -> list[dict[str, Any]]:
    """Each registered model with its versions and, per role alias, the holdout metrics."""
    registry = Registry(store)
    out = []
    for name in registry.models():
        versions = registry.versions(name)
        roles = {}
        for v in versions:
            for alias in v.aliases:
                if alias in ROLES:
                    meta = open_bundle(store, v.bundle_id).meta()
                    roles[alias] = {
                        "version": v.version,
                        "metrics": meta.metrics,
                        "baseline": meta.baseline_metrics,
                        "blessed": v.blessed,
                    }
        out.append(
            {
                "name": name,
                "versions": [v.model_dump() for v in versions],
                "latest": versions[-1].version if versions else None,
                "roles": roles,
            }
        )
    return out


def model_versions(store: Store, name: str) -> dict[str, Any]:
    """A registered model: its versions (newest first), aliases and alias history."""
    registry = Registry(store)
    if name not in registry.models():
        registry.resolve(ModelRef(name, version=1))  # raises NotFound naming what exists
    versions = [v.model_dump() for v in reversed(registry.versions(name))]
    aliases = {a: v["version"] for v in versions for a in v["aliases"]}
    return {"name": name, "versions": versions, "aliases": aliases, "history": history(store, name)}


def history(store: Store, name: str) -> list[dict[str, Any]]:
    """Every alias move of ``name``, newest first."""
    return list(reversed(Registry(store).history(name)))


def version_detail(store: Store, name: str, version: int) -> dict[str, Any]:
    """One version's evidence: metrics vs baseline with intervals, every gate check,
    the evaluation summary, the model card text and the alias history."""
    resolved = Registry(store).resolve(ModelRef(name, version=version))
    bundle = open_bundle(store, resolved.bundle_id)
    meta = bundle.meta()
    evaluation = bundle.evaluation()
    blessing = bundle.blessing()
    aliases = next(
        v.aliases for v in Registry(store).versions(name) if v.version == resolved.version
    )
    metrics = [
        {
            "name": key,
            "value": value,
            "interval": evaluation.intervals.get("candidate", {}).get(key),
            "baseline": meta.baseline_metrics.get(key),
        }
        for key, value in meta.metrics.items()
    ]
    card = bundle.card_path.read_text(encoding="utf-8") if bundle.card_path.is_file() else ""
    return {
        "name": name,
        "version": resolved.version,
        "bundle_id": resolved.bundle_id,
        "blessed": resolved.blessed,
        "aliases": aliases,
        "meta": meta.model_dump(mode="json"),
        "metrics": metrics,
        "primary": evaluation.primary_metric,
        "confidence": evaluation.confidence,
        "rows": evaluation.rows,
        "benefit": evaluation.benefit.model_dump(mode="json") if evaluation.benefit else None,
        "slices": [s.model_dump(mode="json") for s in evaluation.slices if s.judged][:30],
        "checks": [c.model_dump(mode="json") for c in blessing.checks],
        "champion_version": blessing.champion_version,
        "card": card,
        "has_report": bundle.report_html_path.is_file(),
        "lineage": bundle.lineage() if bundle.lineage_path.is_file() else {},
        "history": [
            e for e in history(store, name) if version in (e["from_version"], e["to_version"])
        ],
    }


def report_path(store: Store, name: str, version: int) -> Any:
    """The evaluation report (HTML) of a version; :class:`NotFound` when it has none."""
    resolved = Registry(store).resolve(ModelRef(name, version=version))
    path = open_bundle(store, resolved.bundle_id).report_html_path
    if not path.is_file():
        raise NotFound(f"{name} v{version} has no evaluation report", "", "")
    return path


# --- tracked runs ----------------------------------------------------------------------

PAGE_SIZES = (25, 50, 100, 200)


@dataclass
class RunQuery:
    """What the runs table shows: filter, order, columns and page.

    ``after`` is the keyset cursor of the page when the order is ``start_time``:
    ``"<start_time>:<n>"`` — the page starts after the first ``n`` runs whose
    start time is that value or beyond it in the order. ``offset`` then only
    numbers the rows; other orders page by ``offset``.
    """

    filter: str = ""
    order_by: str = "start_time desc"
    experiment: str | None = None
    metrics: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    offset: int = 0
    limit: int = 50
    after: str = ""


@dataclass
class RunsPage:
    rows: list[dict[str, Any]]
    has_next: bool
    keys: dict[str, list[str]]
    experiments: list[str]
    next_after: str = ""


def _keyset(q: RunQuery) -> tuple[str | None, int] | None:
    """The filter and the number of runs to skip for a keyset page (None: page by offset)."""
    key, _, direction = q.order_by.partition(" ")
    if key != "start_time" or not q.after:
        return None
    value, _, skip = q.after.partition(":")
    try:
        bound, count = float(value), int(skip)
    except ValueError:
        raise BadInput(
            f"page cursor {q.after!r} is not one this page made",
            "it is START_TIME:COUNT",
            "start again from the first page",
        ) from None
    # The bound is itself a clause of the search language; repr() round-trips the float.
    op = ">=" if direction.strip().lower() == "asc" else "<="
    clause = f"start_time {op} {bound!r}"
    return (f"{q.filter} and {clause}" if q.filter else clause), count


def runs_page(store: Store, q: RunQuery) -> RunsPage:
    """One page of tracked runs, filtered and ordered by the tracking query API.

    The search reads only the runs' rows up to the end of the page (from the
    cursor, when the order is by start time: then any page costs what the
    first does); params, metrics and tags are then read for the page's runs
    alone, so the page costs the same whatever the number of metrics.
    """
    if q.limit not in PAGE_SIZES:
        raise BadInput(f"page size {q.limit}", "", f"use one of {PAGE_SIZES}")
    keyset = _keyset(q)
    text, skip = keyset if keyset else (q.filter or None, q.offset)
    found = tracking.search_runs(
        store.engine,
        experiment=q.experiment,
        filter=text,
        order_by=q.order_by,
        limit=skip + q.limit + 1,
        details=False,
    )
    shown = found[: skip + q.limit]
    page = shown[skip:]
    rows = [dict(v.info) for v in page]
    keys = _fill_page(store, rows)
    after = ""
    if page and q.order_by.startswith("start_time"):
        # The next page starts after every run shown so far that shares the last start time.
        last = page[-1].info["start_time"]
        tied = sum(1 for v in shown if v.info["start_time"] == last)
        after = f"{last!r}:{tied}"
    return RunsPage(rows, len(found) > skip + q.limit, keys, experiments(store), after)


def _fill_page(store: Store, rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Params, latest metrics and tags of these runs; the keys seen, for the column picker."""
    # no typed reader yet: the tracking API fills every run it finds, and a page
    # needs only its own.
    ids = [r["id"] for r in rows]
    by_id = {r["id"]: r for r in rows}
    seen: dict[str, set[str]] = {"metrics": set(), "params": set(), "tags": set()}
    for r in rows:
        r["metrics"], r["params"], r["tags"] = {}, {}, {}
    if not ids:
        return {k: [] for k in seen}
    m = t.run_latest_metrics
    with store.engine.connect() as conn:
        for kind, table, value in (
            ("metrics", m, m.c.value),
            ("params", t.run_params, t.run_params.c.value),
            ("tags", t.run_tags, t.run_tags.c.value),
        ):
            for run_id, key, val in conn.execute(
                sa.select(table.c.run_id, table.c.key, value).where(table.c.run_id.in_(ids))
            ):
                by_id[run_id][kind][key] = val
                seen[kind].add(key)
    return {k: sorted(v) for k, v in seen.items()}


def experiments(store: Store) -> list[str]:
    """The experiments that have runs (for the experiment picker)."""
    # no typed reader yet; `runs.experiment` is indexed, so this is a short index scan.
    with store.engine.connect() as conn:
        return [
            str(r[0])
            for r in conn.execute(
                sa.select(t.runs.c.experiment).distinct().order_by(t.runs.c.experiment)
            )
        ]


def run_detail(store: Store, ref: str) -> dict[str, Any]:
    """One tracked run (id, id prefix or name) with each metric's full history."""
    view = tracking.get_run(store.engine, ref)
    curves = {key: tracking.metric_history(store.engine, view.id, key) for key in view.metrics}
    return {**view.to_dict(), "curves": curves}


def compare_runs(store: Store, refs: list[str]) -> list[dict[str, Any]]:
    """Several runs side by side, with their metric histories."""
    if not 2 <= len(refs) <= 8:
        raise BadInput(
            f"{len(refs)} run(s) selected to compare",
            "a comparison shows 2 to 8 runs side by side",
            "tick between 2 and 8 runs in the table",
        )
    return [run_detail(store, ref) for ref in dict.fromkeys(refs)]


# --- data ------------------------------------------------------------------------------


def dataset_versions(store: Store) -> list[dict[str, Any]]:
    """Every dataset version, newest first, with its validation status and why."""
    from mlcycle.data.landing import statuses

    # no typed reader yet (the CLI's list lives in cli/data_versions.py).
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.artifacts.c.id, t.artifacts.c.created_at, t.artifacts.c.record)
            .where(t.artifacts.c.kind == "dataset")
            .order_by(t.artifacts.c.created_at.desc())
        ).all()
    status = statuses(store)
    out = []
    for artifact_id, created, record in rows:
        rec = json.loads(record)
        st = status.get(artifact_id) or {}
        out.append(
            {
                "id": artifact_id,
                "created_at": created,
                "rows": rec["rows"],
                "columns": len(rec["columns"]),
                "partitions": len(rec.get("partitions", [])),
                "source": rec["source"],
                "status": st.get("status", "unvalidated"),
                "reason": st.get("reason"),
            }
        )
    return out


def dataset_detail(store: Store, ref: str) -> dict[str, Any]:
    """A dataset version: its record, profile, validation findings and what used it."""
    from mlcycle.data.landing import status_of

    artifact_id = store.resolve(ref, kind="dataset")
    record = store.record(artifact_id)
    status = status_of(store, artifact_id) or {"status": "unvalidated"}
    violations: list[dict[str, Any]] = []
    if status.get("validation_id") and store.has(status["validation_id"]):
        violations = store.record(status["validation_id"]).get("violations", [])
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
    }


# --- monitoring ------------------------------------------------------------------------


def monitored_models(store: Store) -> list[str]:
    """Models that have monitor windows or alerts."""
    # no typed reader yet: monitor's readers take one model at a time.
    with store.engine.connect() as conn:
        names = {
            str(r[0]) for r in conn.execute(sa.select(t.monitor_windows.c.model).distinct())
        } | {str(r[0]) for r in conn.execute(sa.select(t.monitor_alerts.c.model).distinct())}
    return sorted(names)


def monitor_windows(store: Store, model: str) -> list[dict[str, Any]]:
    """Every window of ``model`` in time order: key, version, rows and metrics."""
    # no typed reader yet: Monitor.windows() needs a Monitor, which loads the bundle's
    # reference rows; the dashboard only reads the stored metrics.
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.monitor_windows)
            .where(t.monitor_windows.c.model == model)
            .order_by(t.monitor_windows.c.start, t.monitor_windows.c.window)
        ).mappings()
        return [
            {
                "key": r["window"],
                "version": r["model_version"],
                "rows": r["rows"],
                "start": r["start"],
                "end": r["end"],
                "metrics": json.loads(r["metrics"]),
            }
            for r in rows
        ]


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


# --- the loop --------------------------------------------------------------------------


def loop_summary(store: Store, model: str) -> dict[str, Any]:
    """For the overview: the loop's run in flight and whether it is stopped."""
    from mlcycle.loop.state import LoopStore

    loop = LoopStore(store)
    active = loop.active(model)
    return {"active": active.to_dict() if active else None, "breaker": loop.breaker(model)}


def loop_state(store: Store, model: str, run_id: str | None = None) -> dict[str, Any]:
    """The continuous-training loop of ``model``: its run in flight, whether it is
    stopped, pending manual triggers, its runs (newest first) and one run's events."""
    from mlcycle.loop.state import LoopStore

    loop = LoopStore(store)
    runs = [r.to_dict() for r in loop.runs(model, limit=50)]
    chosen = None
    if run_id:
        chosen = next((r for r in runs if r["id"].startswith(run_id)), None)
        if chosen is None:
            raise NotFound(
                f"no loop run {run_id!r} of {model}",
                "it is not one of the model's 50 newest loop runs",
                f"pick a run on /loop?model={model}",
            )
    active = loop.active(model)
    return {
        "active": active.to_dict() if active else None,
        "breaker": loop.breaker(model),
        "pending": loop.pending(model),
        "runs": runs,
        "chosen": chosen,
        "events": loop.events(chosen["id"]) if chosen else [],
    }
