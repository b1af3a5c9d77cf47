"""Metric points packed into blocks: one database row per (run, key, flush).

A row per point made the tracker's throughput that of the database's index
(two B-tree inserts a point). A block holds a metric's points from one flush as
three little-endian arrays — steps (int64), values and timestamps (float64) —
so a flush of 100,000 points from 100 keys writes 100 rows. The latest point of
each metric is upserted into ``run_latest_metrics`` in the same transaction;
searches and filters read that table, the history reads the blocks.

Example:
    >>> blocks, latest = encode([("r1", "loss", 0, 0.5, 1.0)], [])
    >>> decode([(blocks[0][5], blocks[0][6], blocks[0][7])])
    [(0, 0.5, 1.0)]
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from itertools import chain
from sys import byteorder
from typing import Any

# The stdlib's array, not numpy: packing is C-speed either way, and `import
# mlcycle` plus a first flush stay light for a script that only tracks.
_SWAP = byteorder == "big"  # blocks are little-endian on every machine

# A single point: (run_id, key, step, value, timestamp).
Point = tuple[str, str, int, float, float]
# One log_metrics call: (run_id, keys, step, timestamp, values in key order).
Batch = tuple[str, tuple[str, ...], int, float, list[float]]
# (run_id, key, n, first_step, last_step, steps, vals, times)
BlockRow = tuple[str, str, int, int, int, bytes, bytes, bytes]
# (run_id, key, step, value, timestamp)
LatestRow = tuple[str, str, int, float, float]


def pack(code: str, items: Iterable[Any]) -> bytes:
    """Items as a little-endian array: code "q" (int64) or "d" (float64)."""
    data = array(code, items)
    if _SWAP:
        data.byteswap()
    return data.tobytes()


def unpack(code: str, blob: bytes) -> array[Any]:
    data = array(code)
    data.frombytes(bytes(blob))
    if _SWAP:
        data.byteswap()
    return data


def _last(steps: Sequence[int], times: Sequence[float]) -> int:
    """Index of the latest point: the highest step, then the latest timestamp."""
    best = len(steps) - 1
    for i in range(best - 1, -1, -1):
        if (steps[i], times[i]) > (steps[best], times[best]):
            best = i
    return best


def encode(points: list[Point], batches: list[Batch]) -> tuple[list[BlockRow], list[LatestRow]]:
    """Group buffered points into block rows and the latest point of each metric."""
    blocks: list[BlockRow] = []
    latest: dict[tuple[str, str], LatestRow] = {}
    # Calls that logged the same keys form a matrix: one column per key, and the
    # steps and timestamps are shared by its columns.
    grouped: dict[tuple[str, tuple[str, ...]], tuple[list[int], list[float], list[list[float]]]]
    grouped = {}
    for run_id, keys, step, ts, values in batches:
        group = grouped.get((run_id, keys))
        if group is None:
            group = grouped[(run_id, keys)] = ([], [], [])
        group[0].append(step)
        group[1].append(ts)
        group[2].append(values)
    for (run_id, keys), (steps, times, rows) in grouped.items():
        last = _last(steps, times)
        step_bytes, time_bytes = pack("q", steps), pack("d", times)
        first, final, n = min(steps), max(steps), len(steps)
        for key, column in zip(keys, zip(*rows, strict=True), strict=True):
            blocks.append((run_id, key, n, first, final, step_bytes, pack("d", column), time_bytes))
            _keep_latest(latest, (run_id, key, steps[last], column[last], times[last]))
    singles: dict[tuple[str, str], tuple[list[int], list[float], list[float]]] = {}
    for run_id, key, step, value, ts in points:
        series = singles.get((run_id, key))
        if series is None:
            series = singles[(run_id, key)] = ([], [], [])
        series[0].append(step)
        series[1].append(value)
        series[2].append(ts)
    for (run_id, key), (steps, values, times) in singles.items():
        last = _last(steps, times)
        blocks.append(
            (
                run_id,
                key,
                len(steps),
                min(steps),
                max(steps),
                pack("q", steps),
                pack("d", values),
                pack("d", times),
            )
        )
        _keep_latest(latest, (run_id, key, steps[last], values[last], times[last]))
    return blocks, list(latest.values())


def _keep_latest(latest: dict[tuple[str, str], LatestRow], row: LatestRow) -> None:
    old = latest.get((row[0], row[1]))
    if old is None or (row[2], row[4]) >= (old[2], old[4]):
        latest[(row[0], row[1])] = row


def decode(blocks: Iterable[tuple[Any, Any, Any]]) -> list[tuple[int, float, float]]:
    """(step, value, timestamp) of every point in (steps, vals, times) blobs, by step then time."""
    points: list[tuple[int, float, float]] = list(
        chain.from_iterable(
            zip(unpack("q", s), unpack("d", v), unpack("d", t), strict=True) for s, v, t in blocks
        )
    )
    # Usually in order already (blocks come by first step), which Timsort checks
    # in one pass; stable, so ties keep the order they were logged in.
    points.sort(key=lambda p: (p[0], p[2]))
    return points


def latest_value(value: float | None) -> float:
    """A latest-value cell as a float (SQLite stores NaN as NULL)."""
    return math.nan if value is None else float(value)
