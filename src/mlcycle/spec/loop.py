"""The `loop:` section: when to retrain, what to retrain on, and how a new model earns production.

Durations are written as a number and a unit (``30m``, ``12h``, ``7d``, ``2w``).

Example:
    >>> Loop.model_validate({"triggers": {"schedule": {"every": "7d"}}}).triggers.schedule.every
    datetime.timedelta(days=7)
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from mlcycle.spec.base import SpecModel

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: object) -> object:
    """``"7d"`` → ``timedelta(days=7)``; a timedelta or a number of seconds passes through.

    Example:
        >>> parse_duration("12h")
        datetime.timedelta(seconds=43200)
    """
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration: write a number and a unit, e.g. 30m, 12h, 7d, 2w"
            )
        return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class ScheduleTrigger(SpecModel):
    """Retrain every ``every``, counted from the last retrain (or the champion's registration)."""

    every: Duration


class NewDataTrigger(SpecModel):
    """Retrain once at least ``min_rows`` new valid rows have landed since the champion's data."""

    min_rows: int = Field(ge=1)


class DriftTrigger(SpecModel):
    """Retrain when a drift alert has persisted for ``windows`` consecutive monitoring windows."""

    windows: int = Field(default=3, ge=1)


class PerformanceTrigger(SpecModel):
    """Retrain when realized performance (joined labels) falls below the holdout's interval.

    When labels are late (fewer than ``monitor.min_labels`` in the last window), the
    label-free estimate is used instead if ``use_estimate`` is on.
    """

    use_estimate: bool = True


class Triggers(SpecModel):
    """Which signals may start a retrain; each one absent is off. Manual triggers are always on."""

    schedule: ScheduleTrigger | None = None
    new_data: NewDataTrigger | None = None
    drift: DriftTrigger | None = None
    performance: PerformanceTrigger | None = None


class Policy(SpecModel):
    """What every trigger must pass before a retrain starts.

    ``cooldown``: no retrain sooner than this after the last one. ``max_retrains`` per
    ``period``: a budget a stuck signal cannot exceed. ``retrain_cost`` (in the benefit
    matrix's units, or in the primary metric's units × rows when the spec has none):
    retrain only when the expected gain over ``horizon`` exceeds it; 0 turns the cost
    rule off. Manual triggers skip the cost rule but not the budget.
    """

    cooldown: Duration = Field(default=timedelta(hours=1))
    max_retrains: int = Field(default=4, ge=1)
    period: Duration = Field(default=timedelta(days=30))
    retrain_cost: float = Field(default=0.0, ge=0)
    horizon: Duration = Field(default=timedelta(days=30))


class TrainingWindow(SpecModel):
    """The data a retrain uses: all of it, or the most recent days or rows (never both)."""

    last_days: float | None = Field(default=None, gt=0)
    last_rows: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_bound(self) -> TrainingWindow:
        if self.last_days is not None and self.last_rows is not None:
            raise ValueError("loop.window: give last_days or last_rows, not both")
        return self


class Guardrails(SpecModel):
    """Label-free limits a challenger (in shadow) or a new champion (in watch) must keep."""

    max_error_rate: float = Field(default=0.01, ge=0, le=1)
    max_p99_ms: float | None = Field(default=None, gt=0)
    min_agreement: float = Field(default=0.8, ge=0, le=1)


class Shadow(SpecModel):
    """How long a blessed challenger scores live traffic beside the champion before its verdict."""

    min_rows: int = Field(default=1000, ge=1)
    min_duration: Duration = Field(default=timedelta(hours=1))
    guardrails: Guardrails = Field(default_factory=Guardrails)


class Watch(SpecModel):
    """After a promotion the previous champion shadows the new one for ``duration``.

    The new champion is rolled back when it is worse on the same rows (paired, beyond
    ``tolerance`` of the primary metric) or breaks a guardrail. ``max_rollbacks`` within
    ``breaker_period`` stop the loop (circuit breaker) until a person resumes it.
    """

    duration: Duration = Field(default=timedelta(hours=24))
    min_rows: int = Field(default=1000, ge=1)
    tolerance: float = Field(default=0.005, ge=0)
    max_rollbacks: int = Field(default=2, ge=1)
    breaker_period: Duration = Field(default=timedelta(days=7))


class Loop(SpecModel):
    """Continuous training: triggers → policy → retrain → gate → shadow → promote → watch."""

    triggers: Triggers = Field(default_factory=Triggers)
    policy: Policy = Field(default_factory=Policy)
    window: TrainingWindow = Field(default_factory=TrainingWindow)
    shadow: Shadow = Field(default_factory=Shadow)
    watch: Watch = Field(default_factory=Watch)
    poll: Duration = Field(
        default=timedelta(minutes=5), description="how often `mlcycle loop` wakes up"
    )
    mode: Literal["shadow", "direct"] = Field(
        default="shadow",
        description=(
            "shadow: a blessed model shadows the champion first; direct: promote when blessed"
        ),
    )
