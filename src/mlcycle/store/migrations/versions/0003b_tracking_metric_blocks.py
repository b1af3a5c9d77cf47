"""tracking: metric points stored as packed blocks, plus each metric's latest value

One row per point (``run_metrics``) made the secondary index the bottleneck of
the tracker: every point cost a B-tree insert in the table and another in the
index (~1 µs each on SQLite, far more per row on PostgreSQL). Points are now
written as one row per (run, key, flush) holding three little-endian arrays —
steps (int64), values and timestamps (float64) — and the latest point of each
metric is kept in ``run_latest_metrics``, which is what searches, filters and
``runs show`` read. Existing points are repacked, nothing is dropped before it
is copied, and the downgrade unpacks them again.

Revision ID: 0003b
Revises: 0003
"""

from array import array
from collections.abc import Iterator
from sys import byteorder
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003b"
down_revision = "0003"
branch_labels = None
depends_on = None

# Self-contained copies of the block format (the store must not import the
# training stage): little-endian, n items each.


def _pack(code: str, items: list[Any]) -> bytes:
    data = array(code, items)
    if byteorder == "big":
        data.byteswap()
    return data.tobytes()


def _unpack(code: str, blob: bytes) -> list[Any]:
    data = array(code)
    data.frombytes(bytes(blob))
    if byteorder == "big":
        data.byteswap()
    return data.tolist()


def _groups(bind: sa.Connection) -> Iterator[tuple[str, str, list[tuple[int, float, float]]]]:
    """(run_id, key, points in step order) for every metric in run_metrics, streamed."""
    result = bind.execute(
        sa.text(
            "SELECT run_id, key, step, value, timestamp FROM run_metrics "
            "ORDER BY run_id, key, step, timestamp"
        )
    )
    current: tuple[str, str] | None = None
    points: list[tuple[int, float, float]] = []
    for run_id, key, step, value, ts in result:
        if (run_id, key) != current:
            if current is not None:
                yield current[0], current[1], points
            current, points = (run_id, key), []
        points.append((int(step), float("nan") if value is None else float(value), float(ts)))
    if current is not None:
        yield current[0], current[1], points


def upgrade() -> None:
    op.create_table(
        "run_metric_blocks",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("first_step", sa.BigInteger, nullable=False),
        sa.Column("last_step", sa.BigInteger, nullable=False),
        sa.Column("steps", sa.LargeBinary, nullable=False),
        sa.Column("vals", sa.LargeBinary, nullable=False),
        sa.Column("times", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_run_metric_blocks_run_key", "run_metric_blocks", ["run_id", "key"])
    op.create_table(
        "run_latest_metrics",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    bind = op.get_bind()
    blocks = sa.table(
        "run_metric_blocks",
        *(sa.column(c) for c in ("run_id", "key", "n", "first_step", "last_step")),
        sa.column("steps", sa.LargeBinary),
        sa.column("vals", sa.LargeBinary),
        sa.column("times", sa.LargeBinary),
    )
    latest = sa.table(
        "run_latest_metrics",
        *(sa.column(c) for c in ("run_id", "key", "step", "value", "timestamp")),
    )
    block_rows: list[dict[str, Any]] = []
    latest_rows: list[dict[str, Any]] = []
    for run_id, key, points in _groups(bind):
        steps, values, times = (list(col) for col in zip(*points, strict=True))
        block_rows.append(
            {
                "run_id": run_id,
                "key": key,
                "n": len(points),
                "first_step": min(steps),
                "last_step": max(steps),
                "steps": _pack("q", steps),
                "vals": _pack("d", values),
                "times": _pack("d", times),
            }
        )
        step, value, ts = points[-1]  # ordered by step, then timestamp
        latest_rows.append(
            {"run_id": run_id, "key": key, "step": step, "value": value, "timestamp": ts}
        )
        if len(block_rows) >= 1000:
            bind.execute(blocks.insert(), block_rows)
            block_rows = []
    if block_rows:
        bind.execute(blocks.insert(), block_rows)
    if latest_rows:
        bind.execute(latest.insert(), latest_rows)
    op.drop_index("ix_run_metrics_run_key_step", table_name="run_metrics")
    op.drop_table("run_metrics")


def downgrade() -> None:
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index("ix_run_metrics_run_key_step", "run_metrics", ["run_id", "key", "step"])
    bind = op.get_bind()
    points = sa.table(
        "run_metrics", *(sa.column(c) for c in ("run_id", "key", "step", "value", "timestamp"))
    )
    result = bind.execute(
        sa.text("SELECT run_id, key, steps, vals, times FROM run_metric_blocks")
    ).all()
    for run_id, key, steps, values, times in result:
        rows = [
            {"run_id": run_id, "key": key, "step": s, "value": v, "timestamp": ts}
            for s, v, ts in zip(
                _unpack("q", steps), _unpack("d", values), _unpack("d", times), strict=True
            )
        ]
        if rows:
            bind.execute(points.insert(), rows)
    op.drop_table("run_latest_metrics")
    op.drop_index("ix_run_metric_blocks_run_key", table_name="run_metric_blocks")
    op.drop_table("run_metric_blocks")
