"""pipeline_runs.git_sha holds "<sha>-dirty" (46 characters): widen it to 64

Revision ID: 0007
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite ignores VARCHAR lengths, and rebuilding the table there would fight
    # the foreign keys of step_runs; only servers that enforce the length need it.
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column("pipeline_runs", "git_sha", type_=sa.String(64), existing_type=sa.String(40))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.alter_column("pipeline_runs", "git_sha", type_=sa.String(40), existing_type=sa.String(64))
