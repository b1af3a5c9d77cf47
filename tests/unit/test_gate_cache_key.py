"""The gate writes the seasonal columns into meta.json, so they must be in its cache key."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mlcycle.pipeline.steps.gate import Gate


def _ctx(seasonal: list[str]) -> Any:
    features = SimpleNamespace(seasonal=seasonal)
    return SimpleNamespace(spec=SimpleNamespace(data=SimpleNamespace(features=features)))


def test_marking_a_column_seasonal_rebuilds_the_bundle() -> None:
    gate = Gate()
    assert gate.key_extra(_ctx([])) == ""  # unchanged for projects without seasonal columns
    assert gate.key_extra(_ctx(["month"])) != gate.key_extra(_ctx([]))
    assert gate.key_extra(_ctx(["day", "month"])) == gate.key_extra(_ctx(["month", "day"]))
