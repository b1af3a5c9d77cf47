"""pipeline_runs: the pid and host of the process running it, so a run whose
process died (kill -9) can be told from a live one and marked killed

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: runs recorded before this revision have no owner to check.
    op.add_column("pipeline_runs", sa.Column("pid", sa.Integer()))
    op.add_column("pipeline_runs", sa.Column("host", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("host")
        batch.drop_column("pid")
