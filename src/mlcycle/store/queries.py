"""Lineage queries over the store's tables: pipeline runs, what their steps produced,
the model versions of bundles, and what an artifact fed.

Kept beside the tables they read, so the CLI and the dashboard ask the same
questions without writing SQL.

Example:
    >>> run = run_by_prefix(store, "dc810c")
    >>> [s["step"] for s in run_outputs(store, run["id"])][:2]
    ['ingest', 'validate']
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from mlcycle.store import Store
from mlcycle.store import tables as t


def run_by_prefix(store: Store, ref: str) -> dict[str, Any] | None:
    """The pipeline run whose id starts with ``ref`` (6+ characters), if exactly one does."""
    if len(ref) < 6:
        return None
    with store.engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(t.pipeline_runs)
                .where(t.pipeline_runs.c.id.startswith(ref, autoescape=True))
                .limit(2)
            )
            .mappings()
            .all()
        )
    return dict(rows[0]) if len(rows) == 1 else None


def run_outputs(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Each step of a run with the artifacts it produced or took from cache."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.step_runs.c.step, t.step_runs.c.status, t.step_cache.c.outputs)
            .select_from(
                t.step_runs.outerjoin(
                    t.step_cache, t.step_cache.c.cache_key == t.step_runs.c.cache_key
                )
            )
            .where(t.step_runs.c.pipeline_run_id == run_id)
            .order_by(t.step_runs.c.id)
        ).all()
    return [
        {"step": r[0], "status": r[1], "outputs": json.loads(r[2]) if r[2] else {}} for r in rows
    ]


def versions_of(store: Store, bundle_ids: list[str]) -> list[dict[str, Any]]:
    """The registered versions (name, version) of these bundles."""
    if not bundle_ids:
        return []
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                t.model_versions.c.name, t.model_versions.c.version, t.model_versions.c.bundle_id
            )
            .where(t.model_versions.c.bundle_id.in_(bundle_ids))
            .order_by(t.model_versions.c.name, t.model_versions.c.version)
        ).all()
    return [{"name": r[0], "version": r[1], "bundle_id": r[2]} for r in rows]


def descendants(store: Store, artifact_id: str, limit: int = 500) -> list[dict[str, Any]]:
    """Artifacts built (directly or not) from ``artifact_id``: what a data version fed."""
    found: dict[str, dict[str, Any]] = {}
    frontier = [artifact_id]
    with store.engine.connect() as conn:
        while frontier and len(found) < limit:
            rows = conn.execute(
                sa.select(t.edges.c.child, t.edges.c.role, t.artifacts.c.kind)
                .join(t.artifacts, t.artifacts.c.id == t.edges.c.child)
                .where(t.edges.c.parent.in_(frontier))
            ).all()
            frontier = []
            for child, role, kind in rows:
                if child not in found:
                    found[child] = {"id": child, "kind": kind, "role": role}
                    frontier.append(child)
    return list(found.values())
