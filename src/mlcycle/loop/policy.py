"""Whether to retrain now: the triggers propose, the policy disposes.

:func:`decide` is a pure function of the ``loop:`` spec section and the
:class:`~mlcycle.loop.signals.Signals` the caller gathered (the live loop from the
store, the backtest from its replay), so a decision can be stored and replayed.

Triggers (each one only when the spec turns it on; manual is always on):

- **manual** — a pending ``mlcycle loop trigger --reason``;
- **performance** — the champion's realized primary metric on the latest labelled
  window is outside the holdout's confidence interval on the bad side (below
  ``ci_low``, or above ``ci_high`` for a lower-is-better metric); when the latest
  window has no labels yet and ``use_estimate`` is on, the label-free estimate;
- **drift** — a drift alert persisted for ``triggers.drift.windows`` windows in a row;
- **new_data** — at least ``min_rows`` new valid rows since the champion's data;
- **schedule** — ``every`` has passed since the last retrain.

Gates, in this order, whatever the trigger:

1. **cooldown** — no retrain sooner than ``policy.cooldown`` after the last one;
2. **budget** — at most ``policy.max_retrains`` retrains in any ``policy.period``
   (counted from ``signals.recent_retrains``), so a stuck signal cannot retrain
   forever;
3. **cost rule** (skipped for manual triggers, off when ``retrain_cost`` is 0) —
   retrain only when the expected gain over ``policy.horizon`` exceeds
   ``retrain_cost``.

The cost rule follows the cost-aware retraining literature: CARA (Mahadevan &
Mathioudakis, arXiv 2310.04216) retrains when the accumulated *staleness cost* —
how much worse the deployed model does on incoming data than a fresh one would —
exceeds the cost of a retrain; Regol et al. (ICML 2025, arXiv 2505.14903) forecast
the performance of the current and of a retrained model over a horizon and retrain
when the expected loss reduction exceeds the retraining cost. Both need what a retrain
*recovers*, not what the champion *lost*: the gap between a model's holdout figure and its
latest window also moves with the base rate (flights: the benefit per row of one model
swings from 2.9 to 9.9 with the monthly delay rate), and no retrain gets that back.

What is implemented (:mod:`mlcycle.loop.recovery`): the out-of-time gain of a cheap refit
of the champion's own output — learned on the previous labelled window, scored on the
latest one against the champion as-is, on the same rows — a regression's intercept and
slope, a classifier's decision threshold (binary) or vector scaling (multiclass). A shift
that persists from one window to the next shows a gain; a transient one shows none.

- *the gain per row* is the one-sided 90 % lower confidence bound of the mean paired
  difference (never below 0);
- *the forecast* assumes it persists over the horizon: expected gain = gain per row ×
  ``rows_per_day`` × horizon in days;
- before two labelled windows of the champion's traffic exist there is no estimate and
  no trigger but a manual one passes the cost rule.

So ``retrain_cost`` is in benefit-matrix units (binary with a matrix), correct decisions
(binary without one, multiclass), or the regression metric's per-row loss × rows (MAE:
total absolute error; RMSE/MSE/R²: total squared error; MAPE: total absolute
fraction error).

Example:
    >>> from datetime import datetime, timedelta, timezone
    >>> from mlcycle.loop.signals import HoldoutSignal, Signals
    >>> from mlcycle.spec.loop import Loop
    >>> loop = Loop.model_validate({"triggers": {"schedule": {"every": "7d"}}})
    >>> now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    >>> signals = Signals(now=now, holdout=HoldoutSignal("mae", 2.0, 1.9, 2.1, False),
    ...                   last_retrain_at=now - timedelta(days=8))
    >>> decide(loop, signals).trigger
    'schedule'
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mlcycle.loop.signals import Decision, HoldoutSignal, Signals, TriggerName, WindowSignal
from mlcycle.spec.loop import Loop

__all__ = ["Proposal", "decide", "expected_gain", "latest_figure", "proposals"]

Proposal = tuple[TriggerName, str, dict[str, Any]]


def decide(loop: Loop, signals: Signals) -> Decision:
    """Retrain now or not, which trigger, and why — the triggers propose, the gates dispose.

    The first trigger that fires (manual, performance, drift, new_data, schedule) is
    the one recorded; every one that fired is listed in ``details["fired"]``.

    Example:
        >>> decide(Loop(), Signals(now=now, holdout=holdout)).retrain   # no trigger on
        False
    """
    fired = proposals(loop, signals)
    if not fired:
        return Decision(False, None, "No trigger fired.", {"fired": []})
    trigger, why, numbers = fired[0]
    details: dict[str, Any] = {"fired": [name for name, _, _ in fired], **numbers}
    policy = loop.policy

    if signals.last_retrain_at is not None:
        since = signals.now - signals.last_retrain_at
        details["since_last_retrain_h"] = round(since.total_seconds() / 3600, 3)
        if since < policy.cooldown:
            return Decision(
                False,
                trigger,
                f"{why}, but the last retrain was {_human(since)} ago, within the "
                f"{_human(policy.cooldown)} cooldown.",
                details,
            )

    start = signals.now - policy.period
    used = sum(1 for at in signals.recent_retrains if start < at <= signals.now)
    details.update(budget_used=used, budget=policy.max_retrains)
    if used >= policy.max_retrains:
        return Decision(
            False,
            trigger,
            f"{why}, but the budget of {policy.max_retrains} retrain(s) per "
            f"{_human(policy.period)} is used up.",
            details,
        )

    if trigger == "manual" or policy.retrain_cost <= 0:
        return Decision(True, trigger, f"{why}.", details)

    gain, gain_details = expected_gain(loop, signals)
    details.update(gain_details)
    if gain is None:
        return Decision(
            False,
            trigger,
            f"{why}, but what a retrain would recover is not known yet (it needs two "
            f"labelled windows of the champion's traffic) to weigh against its cost of "
            f"{policy.retrain_cost:g}.",
            details,
        )
    if gain <= policy.retrain_cost:
        return Decision(
            False,
            trigger,
            f"{why}, but the expected gain over {_human(policy.horizon)} ({gain:.4g}) does "
            f"not exceed the retrain cost ({policy.retrain_cost:g}).",
            details,
        )
    return Decision(
        True,
        trigger,
        f"{why}, and the expected gain over {_human(policy.horizon)} ({gain:.4g}) exceeds "
        f"the retrain cost ({policy.retrain_cost:g}).",
        details,
    )


def proposals(loop: Loop, signals: Signals) -> list[Proposal]:
    """Every trigger that fires now, most specific first: (name, why, numbers).

    Example:
        >>> [name for name, _, _ in proposals(loop, signals)]
        ['schedule']
    """
    triggers = loop.triggers
    fired: list[Proposal] = []
    if signals.manual_reason is not None:
        fired.append(("manual", f"Manual trigger: {signals.manual_reason}", {}))
    if triggers.performance is not None:
        found = _performance(signals, use_estimate=triggers.performance.use_estimate)
        if found is not None:
            fired.append(found)
    if triggers.drift is not None and signals.drift_streak >= triggers.drift.windows:
        fired.append(
            (
                "drift",
                f"Drift persisted for {signals.drift_streak} window(s) in a row "
                f"(trigger at {triggers.drift.windows})",
                {"drift_streak": signals.drift_streak},
            )
        )
    if triggers.new_data is not None and signals.new_rows >= triggers.new_data.min_rows:
        fired.append(
            (
                "new_data",
                f"{signals.new_rows} new rows landed (trigger at {triggers.new_data.min_rows})",
                {"new_rows": signals.new_rows},
            )
        )
    if triggers.schedule is not None:
        every = triggers.schedule.every
        since = None if signals.last_retrain_at is None else signals.now - signals.last_retrain_at
        if since is None or since >= every:
            ago = "no retrain yet" if since is None else f"last retrain {_human(since)} ago"
            fired.append(("schedule", f"Scheduled every {_human(every)} ({ago})", {}))
    return fired


def latest_figure(
    windows: tuple[WindowSignal, ...], *, use_estimate: bool = True
) -> tuple[WindowSignal, float, str] | None:
    """The latest window with a figure for the primary metric: (window, value, kind).

    ``kind`` is ``"realized"`` (from joined labels) or ``"estimated"`` (label-free,
    only for the latest window, and only when it has no realized figure).

    Example:
        >>> latest_figure((WindowSignal(t0, t1, rows=10, labelled_rows=10, realized=0.8),))[1:]
        (0.8, 'realized')
    """
    if windows and windows[-1].realized is None and use_estimate:
        last = windows[-1]
        if last.estimated is not None:
            return last, last.estimated, "estimated"
    for window in reversed(windows):
        if window.realized is not None:
            return window, window.realized, "realized"
    return None


def expected_gain(loop: Loop, signals: Signals) -> tuple[float | None, dict[str, Any]]:
    """The expected gain of retraining now over the policy's horizon (None: no estimate yet).

    gain per row = what a retrain is estimated to *recover* (``signals.recovery``: the
    lower confidence bound of the out-of-time gain of a refit of the champion's output,
    :func:`mlcycle.loop.recovery.estimate_recovery`); expected gain = gain per row ×
    ``rows_per_day`` × horizon in days. What the champion *lost* (holdout figure − latest
    window) is recorded beside it for the reader, but not weighed: a change of base rate
    lowers it for any model. See the module docstring for the grounding.

    Example:
        >>> expected_gain(loop, signals)[0]     # recovers 1.0 per row, 10 rows/day
        300.0                                   # 1.0 × 10 × 30 days
    """
    use_estimate = loop.triggers.performance is None or loop.triggers.performance.use_estimate
    details: dict[str, Any] = {}
    found = latest_figure(signals.windows, use_estimate=use_estimate)
    if found is not None:
        details.update(_lost(signals.holdout, *found))
    recovery = signals.recovery
    if recovery is None:
        return None, details
    horizon_days = loop.policy.horizon.total_seconds() / 86400
    gain = recovery.gain_per_row * signals.rows_per_day * horizon_days
    details.update(
        recovery.to_dict(),
        gain_units=recovery.units,
        gain_per_row=recovery.gain_per_row,
        rows_per_day=signals.rows_per_day,
        horizon_days=horizon_days,
        expected_gain=gain,
        retrain_cost=loop.policy.retrain_cost,
    )
    return gain, details


def _lost(holdout: HoldoutSignal, window: WindowSignal, value: float, kind: str) -> dict[str, Any]:
    """What the champion lost since its holdout (for the record; the rule does not weigh it)."""
    if (
        kind == "realized"
        and holdout.benefit_per_row is not None
        and window.benefit_per_row is not None
    ):
        return {
            "holdout_benefit_per_row": holdout.benefit_per_row,
            "window_benefit_per_row": window.benefit_per_row,
            "lost_per_row": holdout.benefit_per_row - window.benefit_per_row,
        }
    return {
        "holdout_value": holdout.value,
        f"window_{kind}": value,
        "lost_per_row": _worse_by(holdout, value),
    }


def _performance(signals: Signals, *, use_estimate: bool) -> Proposal | None:
    found = latest_figure(signals.windows, use_estimate=use_estimate)
    if found is None:
        return None
    _, value, kind = found
    holdout = signals.holdout
    bound = holdout.ci_low if holdout.higher_is_better else holdout.ci_high
    below = value < bound if holdout.higher_is_better else value > bound
    if not below:
        return None
    side = "below" if holdout.higher_is_better else "above"
    return (
        "performance",
        f"The {kind} {holdout.metric} ({value:.4g}) is {side} the holdout's interval "
        f"[{holdout.ci_low:.4g}, {holdout.ci_high:.4g}]",
        {"figure": kind, "value": value, "bound": bound},
    )


def _worse_by(holdout: HoldoutSignal, value: float) -> float:
    """How much worse ``value`` is than the holdout figure (positive = worse)."""
    return holdout.value - value if holdout.higher_is_better else value - holdout.value


def _human(delta: timedelta) -> str:
    """A duration as a person says it: 36h → '1.5 days', 90m → '1.5 hours'."""
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            value = seconds / size
            shown = f"{value:.3g}"
            return f"{shown} {unit}" + ("" if shown == "1" else "s")
    return f"{seconds:.3g} seconds"
