"""Metadata tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Core rather than ORM: every write here is one short statement or one small
transaction, and several processes share the database.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(40), nullable=False, index=True),
    Column("created_at", String(40), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("record", Text, nullable=False),
)

edges = Table(
    "lineage_edges",
    metadata,
    Column("child", String(64), ForeignKey("artifacts.id"), primary_key=True),
    Column("parent", String(64), ForeignKey("artifacts.id"), primary_key=True),
    Column("role", String(40), primary_key=True),
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("started_at", String(40), nullable=False),
    Column("ended_at", String(40)),
    Column("status", String(20), nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("git_sha", String(40)),
    Column("message", Text),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline_run_id", String(36), ForeignKey("pipeline_runs.id"), index=True),
    Column("step", String(40), nullable=False),
    Column("cache_key", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("ended_at", String(40)),
    Column("duration_s", Float),
    Column("error", Text),
    Column("outputs", Text),
)

step_cache = Table(
    "step_cache",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("step", String(40), nullable=False),
    Column("outputs", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("created_at", String(40), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(200), ForeignKey("registered_models.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("bundle_id", String(64), ForeignKey("artifacts.id"), nullable=False),
    Column("blessed", Boolean, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("name", "bundle_id", name="uq_model_versions_bundle"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("name", String(200), ForeignKey("registered_models.name"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
)

# Append-only: who moved which alias from where to where, and why.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, index=True),
    Column("alias", String(100), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("at", String(40), nullable=False),
)
