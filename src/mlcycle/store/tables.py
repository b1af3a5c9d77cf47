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
    Index,
    Integer,
    LargeBinary,
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
    Column("git_sha", String(64)),
    Column("message", Text),
    # revision 0008: the process running it (a `running` run whose pid is gone was killed)
    Column("pid", Integer),
    Column("host", String(200)),
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
    # revision 0004 (registry): promote | rollback
    Column("action", String(20), nullable=False, server_default="promote"),
)

# --- data stage (revision 0002) ------------------------------------------------------

# One row per immutable raw partition landed by an ingest; the row is written in
# the same transaction that makes the partition visible, so readers trust only it.
raw_partitions = Table(
    "raw_partitions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source", String(200), nullable=False, index=True),
    Column("path", Text, nullable=False),
    Column("ingested_at", String(40), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source_fingerprint", String(64), nullable=False),
    Column("watermark_column", String(200)),
    Column("watermark_min", Text),
    Column("watermark_max", Text),
    Column("status", String(20), nullable=False),
    Column("details", Text, nullable=False),
)

# valid | invalid (quarantined: kept, never trained on) for each validated version.
dataset_status = Table(
    "dataset_status",
    metadata,
    Column("dataset_id", String(64), ForeignKey("artifacts.id"), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("validation_id", String(64)),
    Column("reason", Text),
    Column("at", String(40), nullable=False),
)

# --- monitor (revision 0006) ---------------------------------------------------------

# The cursor over the prediction log: every file already read, with its time range,
# so a run reads only new files (plus old ones sharing a window with new rows).
monitor_files = Table(
    "monitor_files",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("path", String(500), primary_key=True),
    Column("rows", BigInteger, nullable=False),
    Column("ts_min", String(40), nullable=False),
    Column("ts_max", String(40), nullable=False),
    Column("seen_at", String(40), nullable=False),
)

# One row per (model, window): the window's metrics as JSON, recomputed when it grows.
monitor_windows = Table(
    "monitor_windows",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("window", String(40), primary_key=True),
    Column("model_version", Integer),
    Column("start", String(40), nullable=False),
    Column("end", String(40), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("computed_at", String(40), nullable=False),
)

# Ground truth, by the id the prediction log carries in `row_id`.
monitor_labels = Table(
    "monitor_labels",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("row_id", String(200), primary_key=True),
    Column("label", Text, nullable=False),
    Column("ingested_at", String(40), nullable=False),
)

# Every alert, with lineage to the model version and window; `pending` lists the
# sinks that have not accepted it yet (retried on the next run, never dropped).
monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False, index=True),
    Column("model_version", Integer),
    Column("window", String(40), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("metric", String(200), nullable=False),
    Column("value", Float),
    Column("bound", Text, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("pending", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    UniqueConstraint("model", "rule", "window", name="uq_monitor_alerts_rule_window"),
)

# --- tracking (revision 0003): runs with their params, metrics, tags and files ----

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment", String(200), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("parent_id", String(32), index=True),
    Column("start_time", Float, nullable=False, index=True),
    Column("end_time", Float),
    Column("duration_s", Float),
    Column("git_sha", String(64)),
    Column("git_dirty", Boolean),
    Column("host", String(200)),
    Column("seed", BigInteger),
    Column("dataset_id", String(64)),
    Column("spec_hash", String(64)),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# Revision 0003b: points as packed blocks (one row per run, key and flush; steps
# int64, vals and times float64, little-endian) and each metric's latest point.
run_metric_blocks = Table(
    "run_metric_blocks",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("n", Integer, nullable=False),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("vals", LargeBinary, nullable=False),
    Column("times", LargeBinary, nullable=False),
    Index("ix_run_metric_blocks_run_key", "run_id", "key"),
)

run_latest_metrics = Table(
    "run_latest_metrics",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("value", Float),
    Column("timestamp", Float, nullable=False),
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

run_files = Table(
    "run_files",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", String(500), primary_key=True),
    Column("artifact_id", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

# --- loop (revision 0009): continuous training as a durable state machine -----------

# One row per loop run: a retrain from trigger to done / rejected / rolled_back / failed.
# Every state change is one transaction that updates this row and appends a loop_events
# row, so the row always says where the run is and the events how it got there.
loop_runs = Table(
    "loop_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("model", String(200), nullable=False, index=True),
    Column("state", String(20), nullable=False),
    Column("trigger", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decision", Text, nullable=False),  # the policy's Decision.details, JSON
    Column("pipeline_run_id", String(36)),
    Column("bundle_id", String(64)),
    Column("blessing_id", String(64)),
    Column("candidate_version", Integer),
    Column("previous_champion", Integer),
    Column("shadow_verdict", Text),  # JSON, the latest one
    Column("watch_verdict", Text),  # JSON, the latest one
    Column("state_since", String(40), nullable=False),  # loop clock, when the state began
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
)

loop_events = Table(
    "loop_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("loop_runs.id"), nullable=False, index=True),
    Column("from_state", String(20)),
    Column("to_state", String(20), nullable=False),
    Column("at", String(40), nullable=False),
    Column("detail", Text, nullable=False),
)

# `mlcycle loop trigger --reason`: waits here until a loop run takes it (consumed_by).
loop_triggers = Table(
    "loop_triggers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", String(40), nullable=False),
    Column("consumed_by", String(36)),
)

# Which loop process may act for a model: renewed each tick, taken over once expired.
loop_leases = Table(
    "loop_leases",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", String(40), nullable=False),
    Column("acquired_at", String(40), nullable=False),
)

# The circuit breaker: a stopped loop stays stopped until `mlcycle loop resume`.
loop_breakers = Table(
    "loop_breakers",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("stopped_at", String(40)),
    Column("reason", Text),
    Column("resumed_at", String(40)),
)
