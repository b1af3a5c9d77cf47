"""The store: metadata in a SQL database, artifact files in a content-addressed folder.

SQLite (``.mlcycle/mlcycle.db`` next to the spec, WAL mode) by default;
PostgreSQL or any SQLAlchemy URL via ``MLCYCLE_STORE_URL``. Artifacts live in
``.mlcycle/artifacts`` or wherever ``MLCYCLE_ARTIFACTS_URL`` points (any fsspec
URL: ``s3://bucket/prefix`` for a team, see ``docs/team.md`` and
:mod:`mlcycle.store.remote`). Migrations run automatically when a store is
opened. A database or bucket that cannot be reached is a
:class:`~mlcycle.errors.StorageUnavailable` naming its URL (password redacted).

Example:
    >>> store = Store.open(Path("."))
    >>> with store.staging() as folder:
    ...     (folder / "hello.txt").write_text("hi")
    ...     ref = store.put(folder, kind="note", record={"text": "hi"})
    >>> store.record(ref)["text"]
    'hi'
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shutil
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from mlcycle.errors import BadInput, NotFound, StorageUnavailable
from mlcycle.local_store import ARTIFACTS_DIR, DB_FILE, STORE_DIR
from mlcycle.store import tables as t
from mlcycle.store.blobs import BlobStore

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(.+)$", re.MULTILINE)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers and one writer work at once across processes; the busy
    # timeout makes a second writer wait instead of failing with "locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship in the `postgres` extra.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise BadInput(
            f"cannot use store URL {url!r}",
            str(exc),
            "set MLCYCLE_STORE_URL to sqlite:///PATH or postgresql://USER@HOST/DB "
            "(install mlcycle[postgres] for PostgreSQL)",
        ) from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


@functools.cache
def schema_heads() -> frozenset[str]:
    """The head revisions in migrations/versions, read without importing Alembic.

    Stages add their tables as revisions that branch from 0001, so there may be
    several heads; a store whose applied heads equal these needs no migration.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for key, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            parsed = ast.literal_eval(value.strip())
            if key == "revision":
                revisions.add(str(parsed))
            elif isinstance(parsed, (tuple, list)):
                parents.update(str(p) for p in parsed)
            elif parsed is not None:
                parents.add(str(parsed))
    return frozenset(revisions - parents)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revisions; cheap when it already is."""
    try:
        with engine.connect() as conn:
            applied = {
                str(r[0]) for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            }
        if applied == schema_heads():
            return
    except sa.exc.DBAPIError:
        pass  # no alembic_version table yet: a new store
    # Alembic is only imported when there is work to do: it costs ~0.1 s.
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two processes opening a new store at once must not both create tables.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7431001)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


class Store:
    """Metadata database + artifact folders, with lineage between artifacts."""

    def __init__(self, engine: Engine, blobs: BlobStore, home: Path) -> None:
        self.engine = engine
        self.blobs = blobs
        self.home = home

    @classmethod
    def open(
        cls, base_dir: Path, url: str | None = None, artifacts_url: str | None = None
    ) -> Store:
        """Open (creating if needed) the store of the project in ``base_dir``."""
        home = base_dir / STORE_DIR
        home.mkdir(parents=True, exist_ok=True)
        url = url or os.environ.get("MLCYCLE_STORE_URL") or f"sqlite:///{home / DB_FILE}"
        artifacts_url = (
            artifacts_url or os.environ.get("MLCYCLE_ARTIFACTS_URL") or str(home / ARTIFACTS_DIR)
        )
        engine = make_engine(url)
        try:
            migrate(engine)
        except sa.exc.OperationalError as exc:
            raise StorageUnavailable(
                f"cannot open the metadata store at {engine.url.render_as_string()}",
                str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc),
                "check MLCYCLE_STORE_URL and that the database server is running",
            ) from exc
        return cls(engine, BlobStore(artifacts_url, home / "cache"), home)

    def close(self) -> None:
        self.engine.dispose()

    # --- artifacts ------------------------------------------------------------------

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A scratch folder to write an artifact's files into; removed if not committed."""
        folder = self.blobs.new_staging()
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def put(
        self,
        folder: Path,
        *,
        kind: str,
        record: BaseModel | dict[str, Any],
        parents: dict[str, str] | None = None,
        volatile: Collection[str] = (),
    ) -> str:
        """Commit a staging folder as an artifact with its record and lineage; return its id.

        ``record`` is also written as ``record.json`` inside the artifact, so the
        files alone are self-describing. ``parents`` maps a role to a parent id.

        Volatile fields (``volatile``, plus a record class's ``VOLATILE_FIELDS``:
        timings, hosts, run ids) stay out of ``record.json``, so the same content
        made twice gets the same id; they are kept in the SQL row, and
        :meth:`record` returns them (the first maker's, when the content existed).
        """
        payload = (
            record.model_dump(mode="json", by_alias=True)
            if isinstance(record, BaseModel)
            else record
        )
        skip = {*volatile, *getattr(record, "VOLATILE_FIELDS", ())}
        hashed = {k: v for k, v in payload.items() if k not in skip}
        (folder / "record.json").write_text(
            json.dumps(hashed, sort_keys=True, default=str), encoding="utf-8"
        )
        text = json.dumps(payload, sort_keys=True, default=str)
        artifact_id, size = self.blobs.commit(folder)
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(t.artifacts.c.id).where(t.artifacts.c.id == artifact_id)
            ).first()
            if not exists:
                conn.execute(
                    t.artifacts.insert().values(
                        id=artifact_id, kind=kind, created_at=now(), size=size, record=text
                    )
                )
            for role, parent in (parents or {}).items():
                edge = {"child": artifact_id, "parent": parent, "role": role}
                found = conn.execute(
                    sa.select(t.edges.c.child).where(
                        t.edges.c.child == artifact_id,
                        t.edges.c.parent == parent,
                        t.edges.c.role == role,
                    )
                ).first()
                if not found:
                    conn.execute(t.edges.insert().values(**edge))
        return artifact_id

    def record(self, artifact_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.artifacts.c.record).where(t.artifacts.c.id == artifact_id)
            ).first()
        if row is None:
            raise NotFound(
                f"no artifact {artifact_id[:12]}",
                "the store has no record of it",
                "list artifacts with `mlcycle lineage` or re-run the pipeline",
            )
        return dict(json.loads(row[0]))

    def kind(self, artifact_id: str) -> str:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.artifacts.c.kind).where(t.artifacts.c.id == artifact_id)
            ).first()
        if row is None:
            raise NotFound(f"no artifact {artifact_id[:12]}", "", "")
        return str(row[0])

    def has(self, artifact_id: str) -> bool:
        """True when the artifact has both its row and its files."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.artifacts.c.id).where(t.artifacts.c.id == artifact_id)
            ).first()
        return row is not None and self.blobs.exists(artifact_id)

    def path(self, artifact_id: str) -> Path:
        return self.blobs.path(artifact_id)

    def resolve(self, prefix: str, kind: str | None = None) -> str:
        """The full id of the artifact whose id starts with ``prefix`` (≥ 6 characters).

        With ``kind``, the artifact must be of that kind (``BadInput`` names the
        kind it is otherwise).

        Example:
            >>> store.resolve("692ef2", kind="dataset")
            '692ef2a81c0d...'
        """
        noun = f"{kind} " if kind else "artifact "
        if len(prefix) < 6:
            raise BadInput(
                f"{noun}id {prefix!r} is too short",
                "ids are matched by a prefix of at least 6 characters",
                "give more of the id",
            )
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.artifacts.c.id, t.artifacts.c.kind)
                # autoescape: "%" and "_" in what the user typed are characters, not
                # LIKE wildcards ("______" must not match every id).
                .where(t.artifacts.c.id.startswith(prefix, autoescape=True))
                .limit(2)
            ).all()
        if not rows:
            raise NotFound(f"no {noun}id starts with {prefix!r}", "", "check the id")
        if len(rows) > 1:
            raise BadInput(
                f"{noun}id {prefix!r} is ambiguous",
                "several ids start with it",
                "give more characters",
            )
        artifact_id, found = str(rows[0][0]), str(rows[0][1])
        if kind is not None and found != kind:
            raise BadInput(
                f"{prefix} is a {found}, not a {kind}",
                f"a {kind} is expected here",
                f"pass the id of a {kind}",
            )
        return artifact_id

    def parents(self, artifact_id: str) -> list[tuple[str, str, str]]:
        """(role, parent id, parent kind) for each input the artifact came from."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.edges.c.role, t.edges.c.parent, t.artifacts.c.kind)
                .join(t.artifacts, t.artifacts.c.id == t.edges.c.parent)
                .where(t.edges.c.child == artifact_id)
                .order_by(t.edges.c.role)
            ).all()
        return [(r[0], r[1], r[2]) for r in rows]

    def lineage(self, artifact_id: str) -> dict[str, Any]:
        """The tree of inputs below an artifact, down to the data it came from."""
        seen: set[str] = set()

        def walk(node: str, role: str) -> dict[str, Any]:
            rec = self.record(node)
            entry: dict[str, Any] = {
                "id": node,
                "role": role,
                "kind": self.kind(node),
                "summary": {k: rec[k] for k in _SUMMARY_KEYS if k in rec},
            }
            if node in seen:
                entry["repeated"] = True
                return entry
            seen.add(node)
            entry["inputs"] = [walk(parent, r) for r, parent, _ in self.parents(node)]
            return entry

        return walk(artifact_id, "self")


_SUMMARY_KEYS = (
    "name",
    "rows",
    "source",
    "source_fingerprint",
    "estimator",
    "blessed",
    "spec_hash",
    "git_sha",
    "strategy",
    "primary_metric",
)
