"""Immutable raw partitions and the status of dataset versions, kept in the store.

An ingest lands its rows as ``raw/<source>/ingested_at=<timestamp>/part-0.parquet``
under the store (``.mlcycle/raw`` locally; ``<MLCYCLE_ARTIFACTS_URL>/raw`` through
fsspec for a remote artifacts root). The file is written under a temporary name
and renamed (locally) or uploaded whole (remotely), and the ``raw_partitions``
row that makes it visible is written in one transaction with the rename, so a
crash leaves either nothing or a finished, recorded partition. Readers only
trust recorded partitions; a stray folder from a killed process is ignored
and swept by the next ingest (its name carries the writer's pid). Nothing
landed is ever rewritten; a partition whose version failed validation is
marked ``quarantined`` and left out of later versions.

Example:
    >>> parts = list_partitions(store, "main")
    >>> [p.rows for p in parts]
    [1200, 300]
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa

from mlcycle.errors import BadInput
from mlcycle.store import Store, now
from mlcycle.store import tables as t
from mlcycle.store.owners import owner_tag, sweep_orphans
from mlcycle.store.remote import storage_error

LANDED = "landed"
QUARANTINED = "quarantined"
_STALE_SECONDS = 3600  # an old-style temporary folder this old belongs to no live ingest
TMP_PREFIX = ".tmp-"


def tmp_name() -> str:
    """A temporary folder name carrying its writer's pid, so a sweep knows when it died."""
    return f"{TMP_PREFIX}{owner_tag()}-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Partition:
    """One landed raw partition (a row of ``raw_partitions``)."""

    id: str
    source: str
    path: str  # relative to the raw root
    ingested_at: str
    rows: int
    content_hash: str
    source_fingerprint: str
    watermark_column: str | None
    watermark_min: str | None
    watermark_max: str | None
    status: str
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "rows": self.rows,
            "content_hash": self.content_hash,
            "watermark_max": self.watermark_max,
            "status": self.status,
        }


class RawRoot:
    """Where a store keeps raw partitions: a local folder or an fsspec location."""

    def __init__(self, store: Store) -> None:
        self.store = store
        blobs = store.blobs
        if blobs.local:
            self.fs: fsspec.AbstractFileSystem = fsspec.filesystem("file")
            self.root = str(store.home / "raw")
            self.local = True
        else:
            self.fs = blobs.fs
            self.root = f"{blobs.root.rstrip('/')}/raw"
            self.local = False

    @contextmanager
    def lock(self, source: str) -> Iterator[None]:
        """Hold an exclusive lock on ``source``'s raw folder (local stores; a no-op remotely)."""
        if not self.local:
            yield
            return
        folder = Path(self.root) / source
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def full(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def read(self, partition: Partition) -> pd.DataFrame:
        path = self.full(partition.path)
        try:
            if self.local:
                return pd.read_parquet(path)
            with self.fs.open(path, "rb") as fh:
                return pd.read_parquet(fh)
        except (OSError, ValueError) as exc:
            raise BadInput(
                f"raw partition {partition.path} cannot be read",
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                "the store was changed by hand; restore the file or remove the store's "
                ".mlcycle/raw folder and mlcycle.db and ingest again",
            ) from exc

    def read_column(self, partition: Partition, column: str) -> pd.Series:
        path = self.full(partition.path)
        if self.local:
            table = pq.read_table(path, columns=[column])
        else:
            with self.fs.open(path, "rb") as fh:
                table = pq.read_table(fh, columns=[column])
        return table.column(0).to_pandas()

    def land(
        self,
        staged_file: Path,
        *,
        source: str,
        rows: int,
        content_hash: str,
        source_fingerprint: str,
        watermark_column: str | None,
        watermark_min: str | None,
        watermark_max: str | None,
        details: dict[str, Any],
    ) -> Partition:
        """Move a finished Parquet file into place and record it, all or nothing."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S.%fZ")
        relative = f"{source}/ingested_at={stamp}/part-0.parquet"
        folder = f"{self.root}/{source}/ingested_at={stamp}"
        partition = Partition(
            id=hashlib.sha256(f"{relative}\n{content_hash}".encode()).hexdigest(),
            source=source,
            path=relative,
            ingested_at=now(),
            rows=rows,
            content_hash=content_hash,
            source_fingerprint=source_fingerprint,
            watermark_column=watermark_column,
            watermark_min=watermark_min,
            watermark_max=watermark_max,
            status=LANDED,
            details=details,
        )
        moved = False
        try:
            with self.store.engine.begin() as conn:
                conn.execute(t.raw_partitions.insert().values(**_row(partition)))
                # Inside the transaction: if the rename fails the row is rolled back;
                # if the commit fails the folder is removed below.
                self._place(staged_file, folder)
                moved = True
        except BaseException:
            if moved:
                self._remove(folder)
            raise
        return partition

    def _place(self, staged_file: Path, folder: str) -> None:
        if self.local:
            parent = Path(folder).parent
            parent.mkdir(parents=True, exist_ok=True)
            tmp = parent / tmp_name()
            tmp.mkdir()
            os.replace(staged_file, tmp / "part-0.parquet")
            os.rename(tmp, folder)  # atomic: the folder appears complete or not at all
        else:
            # Object stores have no rename; the row written after the upload is what
            # makes the partition visible, so a torn upload is never read.
            try:
                self.fs.put_file(str(staged_file), f"{folder}/part-0.parquet")
            except Exception as exc:  # each backend raises its own kinds: named, exit 2
                url = self.store.blobs.url
                raise storage_error(url, exc, "write raw data to", self.fs) from None

    def _remove(self, folder: str) -> None:
        try:
            if self.local:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                self.fs.rm(folder, recursive=True)
        except OSError:
            pass

    def sweep(self, source: str) -> int:
        """Remove the temporary folders of killed ingests (their pid is gone); return how many.

        A folder without a pid in its name (an older mlcycle's) goes once it is an
        hour old.
        """
        if not self.local:
            return 0
        return sweep_orphans(Path(self.root) / source, TMP_PREFIX, stale_seconds=_STALE_SECONDS)


def _row(p: Partition) -> dict[str, Any]:
    return {
        "id": p.id,
        "source": p.source,
        "path": p.path,
        "ingested_at": p.ingested_at,
        "rows": p.rows,
        "content_hash": p.content_hash,
        "source_fingerprint": p.source_fingerprint,
        "watermark_column": p.watermark_column,
        "watermark_min": p.watermark_min,
        "watermark_max": p.watermark_max,
        "status": p.status,
        "details": json.dumps(p.details, sort_keys=True, default=str),
    }


def list_partitions(store: Store, source: str, *, usable_only: bool = False) -> list[Partition]:
    """The partitions of ``source`` in landing order (optionally without quarantined ones).

    Example:
        >>> [p.status for p in list_partitions(store, "main")]
        ['landed', 'quarantined', 'landed']
    """
    query = sa.select(t.raw_partitions).where(t.raw_partitions.c.source == source)
    if usable_only:
        query = query.where(t.raw_partitions.c.status == LANDED)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(t.raw_partitions.c.path)).mappings().all()
    return [
        Partition(
            **{k: v for k, v in r.items() if k != "details"}, details=json.loads(r["details"])
        )
        for r in rows
    ]


def partitions_hash(partitions: Sequence[Partition]) -> str:
    """A short identity of a set of partitions (for cache validity)."""
    text = "\n".join(f"{p.id}:{p.status}" for p in partitions)
    return hashlib.sha256(text.encode()).hexdigest()


def quarantine(store: Store, partition_ids: Sequence[str]) -> None:
    """Mark partitions so no later dataset version includes them (they stay on disk)."""
    if not partition_ids:
        return
    with store.engine.begin() as conn:
        conn.execute(
            t.raw_partitions.update()
            .where(t.raw_partitions.c.id.in_(list(partition_ids)))
            .values(status=QUARANTINED)
        )


def set_status(
    store: Store,
    dataset_id: str,
    *,
    source: str,
    valid: bool,
    validation_id: str | None,
    reason: str | None = None,
) -> None:
    """Record whether a dataset version passed validation (one row per version)."""
    values = {
        "source": source,
        "status": "valid" if valid else "invalid",
        "validation_id": validation_id,
        "reason": reason,
        "at": now(),
    }
    with store.engine.begin() as conn:
        updated = conn.execute(
            t.dataset_status.update()
            .where(t.dataset_status.c.dataset_id == dataset_id)
            .values(**values)
        ).rowcount
        if not updated:
            conn.execute(t.dataset_status.insert().values(dataset_id=dataset_id, **values))


def status_of(store: Store, dataset_id: str) -> dict[str, Any] | None:
    """The validation status row of a dataset version, or None if never validated."""
    with store.engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(t.dataset_status).where(t.dataset_status.c.dataset_id == dataset_id)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


def statuses(store: Store) -> dict[str, dict[str, Any]]:
    """Every dataset version's status row, by dataset id."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.dataset_status)).mappings().all()
    return {r["dataset_id"]: dict(r) for r in rows}


def previous_valid(store: Store, source: str, excluding: str) -> str | None:
    """The most recently validated good dataset version of ``source`` other than one."""
    with store.engine.connect() as conn:
        # Newest by when the version was made, not when it was last (re)validated.
        row = conn.execute(
            sa.select(t.dataset_status.c.dataset_id)
            .join(t.artifacts, t.artifacts.c.id == t.dataset_status.c.dataset_id)
            .where(
                t.dataset_status.c.source == source,
                t.dataset_status.c.status == "valid",
                t.dataset_status.c.dataset_id != excluding,
            )
            .order_by(t.artifacts.c.created_at.desc())
            .limit(1)
        ).first()
    return str(row[0]) if row else None


def accept(store: Store, partition_ids: Sequence[str], *, audit: dict[str, Any]) -> int:
    """Take quarantined partitions back into use, recording who/when/why in their details.

    The caller re-validated them first (``mlcycle data accept``); only rows still
    ``quarantined`` change, in one transaction, and each keeps the history of its
    acceptances under ``details["accepted"]``. Returns how many changed.

    Example:
        >>> accept(store, [part.id], audit={"by": "ana", "at": now(), "reason": "new route"})
        1
    """
    changed = 0
    with store.engine.begin() as conn:
        for pid in partition_ids:
            row = conn.execute(
                sa.select(t.raw_partitions.c.details).where(
                    t.raw_partitions.c.id == pid, t.raw_partitions.c.status == QUARANTINED
                )
            ).first()
            if row is None:
                continue
            details = json.loads(row[0])
            details["accepted"] = [*details.get("accepted", []), audit]
            changed += conn.execute(
                t.raw_partitions.update()
                .where(t.raw_partitions.c.id == pid, t.raw_partitions.c.status == QUARANTINED)
                .values(status=LANDED, details=json.dumps(details, sort_keys=True, default=str))
            ).rowcount
    return changed
