"""loop: runs of the continuous-training state machine, their events, manual triggers,
the lease between loop processes and the circuit breaker

Revision ID: 0009
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("pipeline_run_id", sa.String(36)),
        sa.Column("bundle_id", sa.String(64)),
        sa.Column("blessing_id", sa.String(64)),
        sa.Column("candidate_version", sa.Integer),
        sa.Column("previous_champion", sa.Integer),
        sa.Column("shadow_verdict", sa.Text),
        sa.Column("watch_verdict", sa.Text),
        sa.Column("state_since", sa.String(40), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
    )
    op.create_table(
        "loop_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id", sa.String(36), sa.ForeignKey("loop_runs.id"), nullable=False, index=True
        ),
        sa.Column("from_state", sa.String(20)),
        sa.Column("to_state", sa.String(20), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "loop_triggers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False, index=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.String(40), nullable=False),
        sa.Column("consumed_by", sa.String(36)),
    )
    op.create_table(
        "loop_leases",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("acquired_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "loop_breakers",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("stopped_at", sa.String(40)),
        sa.Column("reason", sa.Text),
        sa.Column("resumed_at", sa.String(40)),
    )


def downgrade() -> None:
    for name in ("loop_breakers", "loop_leases", "loop_triggers", "loop_events", "loop_runs"):
        op.drop_table(name)
