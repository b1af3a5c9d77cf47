"""Revision 0003b repacks the points of an existing store into blocks, and back."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from mlcycle.store import MIGRATIONS, Store, make_engine, schema_heads
from mlcycle.train.tracking import Tracker, query

# (run, key, step, value, timestamp): steps out of order, a repeated step (the
# later timestamp wins), and a NaN that SQLite keeps as NULL.
POINTS = [
    ("a" * 32, "loss", 2, 0.25, 12.0),
    ("a" * 32, "loss", 0, 1.0, 10.0),
    ("a" * 32, "loss", 1, 0.5, 11.0),
    ("a" * 32, "loss", 2, 0.2, 13.0),
    ("a" * 32, "gap", 0, None, 10.0),
    ("b" * 32, "loss", 0, 0.9, 20.0),
]


def _alembic(engine: sa.Engine, action: str, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, target)


def test_existing_points_survive_the_upgrade_and_the_downgrade(
    store_url: str, tmp_path: Path
) -> None:
    assert "0003b" in schema_heads()
    engine = make_engine(store_url)
    _alembic(engine, "upgrade", "0003")  # a store from before the blocks
    with engine.begin() as conn:
        for run_id, name in (("a" * 32, "old-a"), ("b" * 32, "old-b")):
            conn.execute(
                sa.text(
                    "INSERT INTO runs (id, experiment, name, status, start_time) "
                    "VALUES (:id, 'old', :name, 'finished', 1.0)"
                ),
                {"id": run_id, "name": name},
            )
        conn.execute(
            sa.text(
                "INSERT INTO run_metrics (run_id, key, step, value, timestamp) "
                "VALUES (:r, :k, :s, :v, :t)"
            ),
            [dict(zip("rksvt", p, strict=True)) for p in POINTS],
        )

    store = Store.open(tmp_path, url=store_url)  # migrates to every head
    try:
        history = query.metric_history(store.engine, "a" * 32, "loss")
        assert [(s, v) for s, v, _ in history] == [(0, 1.0), (1, 0.5), (2, 0.25), (2, 0.2)]
        view = query.get_run(store.engine, "old-a")
        assert view.metrics["loss"] == 0.2 and math.isnan(view.metrics["gap"])
        found = query.search_runs(store.engine, experiment="old", filter="metrics.loss > 0.5")
        assert [r.info["name"] for r in found] == ["old-b"]
        # New points land after the old ones.
        tracker = Tracker(store, flush_interval=60)
        with tracker.start_run("new", experiment="old") as run:
            run.log_metrics({"loss": 0.1}, step=3)
        tracker.close()
        with store.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert "run_metrics" not in tables and "run_metric_blocks" in tables
    finally:
        store.close()

    _alembic(engine, "downgrade", "0003b-1")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT run_id, key, step, value, timestamp FROM run_metrics "
                "WHERE run_id IN (:a, :b) ORDER BY run_id, key, step, timestamp"
            ),
            {"a": "a" * 32, "b": "b" * 32},
        ).all()
    engine.dispose()
    expected = sorted(POINTS, key=lambda p: (p[0], p[1], p[2], p[4]))
    assert [_no_nan(r) for r in rows] == [_no_nan(p) for p in expected]


def _no_nan(row: Sequence[object]) -> tuple[object, ...]:
    # A NULL value comes back from the blocks as NaN; both mean "no number".
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row)


@pytest.mark.parametrize("points", [0, 3])
def test_a_store_without_points_upgrades_too(tmp_path: Path, points: int) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    engine = make_engine(url)
    _alembic(engine, "upgrade", "0003")
    if points:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO run_metrics (run_id, key, step, value, timestamp) "
                    "VALUES ('r', 'k', :s, 1.0, 1.0)"
                ),
                [{"s": s} for s in range(points)],
            )
    engine.dispose()
    store = Store.open(tmp_path, url=url)
    try:
        assert len(query.metric_history(store.engine, "r", "k")) == points
    finally:
        store.close()
