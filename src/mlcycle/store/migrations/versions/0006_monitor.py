"""monitor: prediction-log cursor, windows, labels, alerts

Revision ID: 0006
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_files",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("path", sa.String(500), primary_key=True),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("ts_min", sa.String(40), nullable=False),
        sa.Column("ts_max", sa.String(40), nullable=False),
        sa.Column("seen_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "monitor_windows",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("window", sa.String(40), primary_key=True),
        sa.Column("model_version", sa.Integer),
        sa.Column("start", sa.String(40), nullable=False),
        sa.Column("end", sa.String(40), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("computed_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "monitor_labels",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("row_id", sa.String(200), primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("ingested_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("model_version", sa.Integer),
        sa.Column("window", sa.String(40), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("bound", sa.Text, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("pending", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("model", "rule", "window", name="uq_monitor_alerts_rule_window"),
    )


def downgrade() -> None:
    for name in ("monitor_alerts", "monitor_labels", "monitor_windows", "monitor_files"):
        op.drop_table(name)
