"""What the pipeline, models and runs pages read, as plain dicts for the templates:
through the registry, the store's typed listings (:mod:`mlcycle.store.listings`)
and the tracking query API. The data and monitoring pages read through
:mod:`readers_data`, the loop page through :mod:`readers_loop`.

Routes and templates never write SQL; neither does this module.

Example:
    >>> page = runs_page(store, RunQuery(filter="metrics.valid_roc_auc > 0.7"))
    >>> [r["name"] for r in page.rows][:2]
    ['hgb', 'baseline_prior']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput, NotFound
from mlcycle.registry.models import ModelRef, Registry
from mlcycle.store import Store, listings
from mlcycle.train.tracking import query as tracking

ROLES = ("champion", "challenger")


# --- pipeline runs ---------------------------------------------------------------------


def pipeline_runs(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """The newest pipeline runs, each with its steps (status, seconds, cache hit, error).

    Example:
        >>> [s["step"] for s in pipeline_runs(store, 1)[0]["steps"]][:2]
        ['ingest', 'validate']
    """
    return [
        {**asdict(run), "cached": run.cached, "seconds": run.seconds}
        for run in listings.pipeline_runs(store, limit)
    ]


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
    values = listings.run_values(store, [r["id"] for r in rows])
    seen: dict[str, set[str]] = {"metrics": set(), "params": set(), "tags": set()}
    for r in rows:
        found = values[r["id"]]
        r["metrics"], r["params"], r["tags"] = found.metrics, found.params, found.tags
        for kind in seen:
            seen[kind].update(r[kind])
    return {k: sorted(v) for k, v in seen.items()}


def experiments(store: Store) -> list[str]:
    """The experiments that have runs (for the experiment picker)."""
    return listings.experiments(store)


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
