"""Packing metric points into blocks and reading them back."""

from __future__ import annotations

import math

from mlcycle.train.tracking.blocks import decode, encode


def _history(blocks: list[tuple], run_id: str, key: str) -> list[tuple[int, float, float]]:
    return decode([(b[5], b[6], b[7]) for b in blocks if b[0] == run_id and b[1] == key])


def test_batches_become_one_block_per_key_and_points_round_trip() -> None:
    batches = [
        ("r", ("a", "b"), step, 100.0 + step, [step * 1.0, -step * 1.0]) for step in range(5)
    ]
    blocks, latest = encode([], batches)
    assert sorted((b[1], b[2], b[3], b[4]) for b in blocks) == [("a", 5, 0, 4), ("b", 5, 0, 4)]
    assert _history(blocks, "r", "b") == [(s, -s * 1.0, 100.0 + s) for s in range(5)]
    assert sorted(latest) == [("r", "a", 4, 4.0, 104.0), ("r", "b", 4, -4.0, 104.0)]


def test_latest_is_the_highest_step_then_the_latest_time() -> None:
    points = [("r", "loss", 5, 0.5, 1.0), ("r", "loss", 9, 0.9, 2.0), ("r", "loss", 9, 0.8, 3.0)]
    batches = [("r", ("loss",), 2, 4.0, [0.2]), ("r", ("loss", "acc"), 7, 5.0, [0.7, 0.1])]
    blocks, latest = encode(points, batches)
    assert sorted(latest) == [("r", "acc", 7, 0.1, 5.0), ("r", "loss", 9, 0.8, 3.0)]
    assert [s for s, _, _ in _history(blocks, "r", "loss")] == [2, 5, 7, 9, 9]


def test_runs_are_kept_apart_and_nan_survives() -> None:
    points = [("r1", "k", 0, math.nan, 1.0), ("r2", "k", 0, 2.0, 1.0)]
    blocks, latest = encode(points, [])
    assert len(blocks) == 2 and len(latest) == 2
    [(step, value, _)] = _history(blocks, "r1", "k")
    assert step == 0 and math.isnan(value)
    assert _history(blocks, "r2", "k") == [(0, 2.0, 1.0)]


def test_nothing_in_nothing_out() -> None:
    assert encode([], []) == ([], [])
    assert decode([]) == []
