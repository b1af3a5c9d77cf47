"""The tracker's writes as driver SQL: one ``executemany`` per table and flush.

Upserts are written so that several processes may flush into one store at
once: a run's row takes its latest state, a param keeps its first value, a tag
its last, and a metric's latest point only moves forward (highest step, then
latest timestamp), whichever process flushes last.

Example:
    >>> statements("qmark")["params"]
    'INSERT INTO run_params (run_id, key, value) VALUES (?, ?, ?) ON CONFLICT ...'
"""

from __future__ import annotations

RUN_COLUMNS = (
    "id",
    "experiment",
    "name",
    "status",
    "parent_id",
    "start_time",
    "end_time",
    "duration_s",
    "git_sha",
    "git_dirty",
    "host",
    "seed",
    "dataset_id",
    "spec_hash",
)


def statements(paramstyle: str) -> dict[str, str]:
    """The SQL of each write, for a driver's paramstyle (qmark for sqlite3, else format)."""
    mark = "?" if paramstyle == "qmark" else "%s"

    def values(n: int) -> str:
        return ", ".join([mark] * n)

    updates = ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "id")
    return {
        "runs": f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES "
        f"({values(len(RUN_COLUMNS))}) ON CONFLICT (id) DO UPDATE SET {updates}",
        # The first value of a param wins, also against another process.
        "params": f"INSERT INTO run_params (run_id, key, value) VALUES ({values(3)}) "
        "ON CONFLICT (run_id, key) DO NOTHING",
        "blocks": "INSERT INTO run_metric_blocks (run_id, key, n, first_step, last_step, "
        f"steps, vals, times) VALUES ({values(8)})",
        # Another process (or an earlier flush) may hold a later point.
        "latest": "INSERT INTO run_latest_metrics (run_id, key, step, value, timestamp) "
        f"VALUES ({values(5)}) ON CONFLICT (run_id, key) DO UPDATE SET "
        "step = excluded.step, value = excluded.value, timestamp = excluded.timestamp "
        "WHERE excluded.step > run_latest_metrics.step OR (excluded.step = "
        "run_latest_metrics.step AND excluded.timestamp >= run_latest_metrics.timestamp)",
        "tags": f"INSERT INTO run_tags (run_id, key, value) VALUES ({values(3)}) "
        "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
        "files": f"INSERT INTO run_files (run_id, name, artifact_id, size) VALUES "
        f"({values(4)}) ON CONFLICT (run_id, name) DO UPDATE SET "
        "artifact_id = excluded.artifact_id, size = excluded.size",
    }
