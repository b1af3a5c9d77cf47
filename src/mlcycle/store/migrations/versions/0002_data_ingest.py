"""data stage: raw partitions (incremental ingest) and dataset version status

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "raw_partitions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False, index=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("ingested_at", sa.String(40), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_fingerprint", sa.String(64), nullable=False),
        sa.Column("watermark_column", sa.String(200)),
        sa.Column("watermark_min", sa.Text),
        sa.Column("watermark_max", sa.Text),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_table(
        "dataset_status",
        sa.Column("dataset_id", sa.String(64), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("validation_id", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("dataset_status")
    op.drop_table("raw_partitions")
