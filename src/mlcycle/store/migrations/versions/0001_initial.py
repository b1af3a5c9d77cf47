"""initial: artifacts, lineage, pipeline runs, step cache, registry

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False, index=True),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("child", sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("parent", sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("role", sa.String(40), primary_key=True),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("ended_at", sa.String(40)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("git_sha", sa.String(40)),
        sa.Column("message", sa.Text),
    )
    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pipeline_run_id", sa.String(36), sa.ForeignKey("pipeline_runs.id"), index=True),
        sa.Column("step", sa.String(40), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.String(40), nullable=False),
        sa.Column("ended_at", sa.String(40)),
        sa.Column("duration_s", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("outputs", sa.Text),
    )
    op.create_table(
        "step_cache",
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(40), nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column(
            "name", sa.String(200), sa.ForeignKey("registered_models.name"), primary_key=True
        ),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("bundle_id", sa.String(64), sa.ForeignKey("artifacts.id"), nullable=False),
        sa.Column("blessed", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("name", "bundle_id", name="uq_model_versions_bundle"),
    )
    op.create_table(
        "aliases",
        sa.Column(
            "name", sa.String(200), sa.ForeignKey("registered_models.name"), primary_key=True
        ),
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, index=True),
        sa.Column("alias", sa.String(100), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    for name in (
        "alias_events",
        "aliases",
        "model_versions",
        "registered_models",
        "step_cache",
        "step_runs",
        "pipeline_runs",
        "lineage_edges",
        "artifacts",
    ):
        op.drop_table(name)
