"""tracking: runs with their params, metrics, tags and files

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("experiment", sa.String(200), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("parent_id", sa.String(32), index=True),
        sa.Column("start_time", sa.Float, nullable=False, index=True),
        sa.Column("end_time", sa.Float),
        sa.Column("duration_s", sa.Float),
        sa.Column("git_sha", sa.String(64)),
        sa.Column("git_dirty", sa.Boolean),
        sa.Column("host", sa.String(200)),
        sa.Column("seed", sa.BigInteger),
        sa.Column("dataset_id", sa.String(64)),
        sa.Column("spec_hash", sa.String(64)),
    )
    # No foreign keys to runs: points are appended in batches, often before the
    # run's own row is flushed by another buffer, and the checks cost time.
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index("ix_run_metrics_run_key_step", "run_metrics", ["run_id", "key", "step"])
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "run_files",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(500), primary_key=True),
        sa.Column("artifact_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_index("ix_run_metrics_run_key_step", table_name="run_metrics")
    for name in ("run_files", "run_tags", "run_metrics", "run_params", "runs"):
        op.drop_table(name)
