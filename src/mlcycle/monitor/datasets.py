"""Dataset versions as a monitoring reference or current sample, read through the store.

The data stage writes each dataset version as a content-addressed artifact of
kind ``dataset`` (files ``data.parquet`` and ``record.json``; the record is a
:class:`mlcycle.artifacts.DatasetVersion` with the frozen contract). Monitoring
reads them here through the store and the shared artifact types only — a stage
never imports another stage.

A version is named by its id, a unique prefix of at least 6 characters, or
``latest`` (the newest version).

Example:
    >>> version = load_version(store, "latest")
    >>> version.id[:12], len(version.frame), version.schema.features[0].name
    ('692ef2a81c0d', 160678, 'month')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from mlcycle.artifacts import DatasetVersion, Profile
from mlcycle.errors import BadInput, NotFound
from mlcycle.schema import Schema
from mlcycle.store import Store
from mlcycle.store import tables as t

#: The name that means "the newest dataset version".
LATEST = "latest"
#: Versions listed in an "unknown version" error.
SHOWN = 5


@dataclass
class Version:
    """One dataset version's rows, frozen contract and profile (of every row)."""

    id: str
    frame: pd.DataFrame
    schema: Schema
    rows: int
    profile: Profile | None = None

    @property
    def label(self) -> str:
        """How windows and reports name this version: ``dataset:<first 12 characters>``."""
        return f"dataset:{self.id[:12]}"


def list_versions(store: Store) -> list[dict[str, Any]]:
    """Every dataset version in the store, newest first: ``id``, ``created_at``, ``rows``.

    Example:
        >>> [v["rows"] for v in list_versions(store)]
        [166668, 160678]
    """
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.artifacts.c.id, t.artifacts.c.created_at, t.artifacts.c.record)
            .where(t.artifacts.c.kind == "dataset")
            .order_by(t.artifacts.c.created_at.desc(), t.artifacts.c.id)
        ).all()
    return [{"id": r[0], "created_at": r[1], "rows": json.loads(r[2]).get("rows")} for r in rows]


def resolve_version(store: Store, ref: str) -> str:
    """The full id of dataset version ``ref`` (an id, a prefix of ≥ 6 characters, or ``latest``).

    Raises :class:`NotFound` naming the versions that do exist when nothing
    matches, and :class:`BadInput` (from :meth:`Store.resolve`) for a short or
    ambiguous prefix or an artifact of another kind.

    Example:
        >>> resolve_version(store, "692ef2")
        '692ef2a81c0d...'
    """
    ref = ref.strip()
    if ref.lower() == LATEST:
        versions = list_versions(store)
        if not versions:
            raise NotFound(
                "no dataset version 'latest': the project has no dataset versions yet",
                "monitoring against a dataset version reads one the data stage wrote",
                "run `mlcycle data ingest` (or `mlcycle run`) first, or pass a data file instead",
            )
        return str(versions[0]["id"])
    try:
        return store.resolve(ref, kind="dataset")
    except NotFound:
        raise _unknown_version(ref, list_versions(store)) from None


def _unknown_version(ref: str, versions: list[dict[str, Any]]) -> NotFound:
    if not versions:
        return NotFound(
            f"no dataset version {ref!r}: the project has no dataset versions yet",
            "monitoring against a dataset version reads one the data stage wrote",
            "run `mlcycle data ingest` (or `mlcycle run`) first, or pass a data file instead",
        )
    shown = ", ".join(f"{str(v['id'])[:12]} ({v['rows']} rows)" for v in versions[:SHOWN])
    more = f" and {len(versions) - SHOWN} more" if len(versions) > SHOWN else ""
    return NotFound(
        f"no dataset version {ref!r}",
        f"the store's dataset versions, newest first, are {shown}{more}",
        f"pass one of those ids (or a prefix of ≥ 6 characters, or `{LATEST}`); "
        "`mlcycle data versions` lists them all",
    )


def load_version(store: Store, ref: str, columns: list[str] | None = None) -> Version:
    """Resolve ``ref`` and read the version's rows (only ``columns`` when given).

    Raises :class:`BadInput` when a column asked for is not in the version.

    Example:
        >>> load_version(store, "latest", ["dep_delay"]).frame.columns.tolist()
        ['dep_delay']
    """
    artifact_id = resolve_version(store, ref)
    record = DatasetVersion.model_validate(store.record(artifact_id))
    if columns is not None:
        missing = [c for c in columns if c not in record.columns]
        if missing:
            raise BadInput(
                f"dataset version {artifact_id[:12]} lacks column(s) {', '.join(missing)}",
                "every column monitored must be in both the reference and the current data",
                "pick a version built with those columns, or leave them out "
                f"(it has: {', '.join(record.columns[:20])})",
            )
    path = store.path(artifact_id) / "data.parquet"
    frame = pd.read_parquet(path, columns=columns)
    return Version(artifact_id, frame, record.schema_, record.rows, record.profile)


__all__ = ["LATEST", "Version", "list_versions", "load_version", "resolve_version"]
