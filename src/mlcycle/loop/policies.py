"""The named policies the backtest compares, each a ``loop:`` config judged by :func:`decide`.

- ``never`` — no trigger: the first champion serves to the end;
- ``periodic`` — retrain at every window boundary (no cooldown, no budget, no cost rule);
- ``drift`` — the drift trigger alone, with the spec's cooldown and budget, no cost rule;
- ``performance`` — the performance trigger alone, with the spec's cooldown and budget,
  no cost rule;
- ``auto`` (the default) — the spec's ``loop:`` section with every trigger on (drift and
  performance added when the spec leaves them off) and the spec's cost rule.

Example:
    >>> from mlcycle.spec.loop import Loop
    >>> [p.name for p in named_policies(Loop(), ["never", "auto"])]
    ['never', 'auto']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from mlcycle.errors import BadInput
from mlcycle.loop.policy import decide
from mlcycle.loop.signals import Decision, Signals
from mlcycle.spec.loop import (
    DriftTrigger,
    Loop,
    PerformanceTrigger,
    Policy,
    ScheduleTrigger,
    Triggers,
)

__all__ = ["DEFAULT_POLICY", "POLICY_NAMES", "NamedPolicy", "named_policies", "named_policy"]

POLICY_NAMES = ("never", "periodic", "drift", "performance", "auto")
DEFAULT_POLICY = "auto"
# "Every window" whatever the windows' lengths (months differ): a schedule this short
# fires at every boundary, and nothing else gates it.
_ALWAYS = timedelta(seconds=1)
_UNLIMITED = 1_000_000


@dataclass(frozen=True)
class NamedPolicy:
    """A policy the backtest replays: a name, what it does, and the loop config it decides with.

    Example:
        >>> named_policy("periodic", Loop()).decide(signals).retrain
        True
    """

    name: str
    description: str
    loop: Loop

    def decide(self, signals: Signals) -> Decision:
        """:func:`mlcycle.loop.policy.decide` under this policy's config."""
        return decide(self.loop, signals)


def named_policy(name: str, spec_loop: Loop) -> NamedPolicy:
    """The policy ``name`` built on the spec's ``loop:`` section (for its triggers and gates).

    Example:
        >>> named_policy("never", Loop()).loop.triggers.schedule is None
        True
    """
    gates = spec_loop.policy
    free = Policy(
        cooldown=timedelta(0), max_retrains=_UNLIMITED, period=gates.period, retrain_cost=0.0
    )
    uncosted = gates.model_copy(update={"retrain_cost": 0.0})
    triggers = spec_loop.triggers
    if name == "never":
        return NamedPolicy(name, "keep the first champion", Loop(triggers=Triggers(), policy=free))
    if name == "periodic":
        return NamedPolicy(
            name,
            "retrain at every window",
            Loop(triggers=Triggers(schedule=ScheduleTrigger(every=_ALWAYS)), policy=free),
        )
    if name == "drift":
        drift = triggers.drift or DriftTrigger()
        return NamedPolicy(
            name,
            f"retrain when drift persists {drift.windows} window(s); cooldown and budget",
            Loop(triggers=Triggers(drift=drift), policy=uncosted),
        )
    if name == "performance":
        performance = triggers.performance or PerformanceTrigger()
        return NamedPolicy(
            name,
            "retrain when the realized metric leaves the holdout interval; cooldown and budget",
            Loop(triggers=Triggers(performance=performance), policy=uncosted),
        )
    if name == "auto":
        every = triggers.model_copy(
            update={
                "drift": triggers.drift or DriftTrigger(),
                "performance": triggers.performance or PerformanceTrigger(),
            }
        )
        return NamedPolicy(
            name,
            "every trigger, gated by cooldown, budget and the cost rule "
            f"(retrain_cost {gates.retrain_cost:g})",
            spec_loop.model_copy(update={"triggers": every}),
        )
    raise BadInput(
        f"unknown policy '{name}'",
        "the backtest replays named policies",
        f"choose from: {', '.join(POLICY_NAMES)}",
    )


def named_policies(spec_loop: Loop, names: Sequence[str] = POLICY_NAMES) -> list[NamedPolicy]:
    """Several named policies, in the order given, each name once.

    Example:
        >>> [p.name for p in named_policies(Loop(), ["auto", "never", "auto"])]
        ['auto', 'never']
    """
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    if not seen:
        raise BadInput("no policy named", "the backtest needs at least one policy", "")
    return [named_policy(name, spec_loop) for name in seen]
