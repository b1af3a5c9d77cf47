"""registry: what kind of move each alias event was (promote, rollback); the alias log
is made append-only in the database itself

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION mlcycle_alias_events_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'alias_events is append-only: the history of alias moves cannot be changed';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    # Rows written before this revision were promotions (rollback was not told apart).
    op.add_column(
        "alias_events",
        sa.Column("action", sa.String(20), nullable=False, server_default="promote"),
    )
    # The audit trail must not be editable, not even by a buggy or hostile client:
    # updates and deletes of alias events are refused by the database.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER alias_events_append_only BEFORE UPDATE OR DELETE ON alias_events "
            "FOR EACH ROW EXECUTE FUNCTION mlcycle_alias_events_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER alias_events_no_{event.lower()} BEFORE {event} ON alias_events "
                "BEGIN SELECT RAISE(ABORT, 'alias_events is append-only: the history of alias "
                "moves cannot be changed'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS alias_events_append_only ON alias_events")
        op.execute("DROP FUNCTION IF EXISTS mlcycle_alias_events_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS alias_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS alias_events_no_delete")
    with op.batch_alter_table("alias_events") as batch:
        batch.drop_column("action")
