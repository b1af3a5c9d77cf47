"""The retrain policy: each trigger fires, the gates (cooldown, budget, cost rule) hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlcycle.errors import BadInput
from mlcycle.loop.policies import POLICY_NAMES, named_policies, named_policy
from mlcycle.loop.policy import decide, expected_gain
from mlcycle.loop.signals import HoldoutSignal, RecoverySignal, Signals, WindowSignal
from mlcycle.spec.loop import Loop

NOW = datetime(2024, 5, 1, tzinfo=UTC)
AUC = HoldoutSignal("roc_auc", 0.89, 0.88, 0.90, True, benefit_per_row=2.0)
MAE = HoldoutSignal("mae", 2.0, 1.9, 2.1, False)


def window(days_ago: int, **kw: Any) -> WindowSignal:
    start = NOW - timedelta(days=days_ago)
    return WindowSignal(start=start, end=start + timedelta(days=1), rows=100, **kw)


def signals(**kw: Any) -> Signals:
    base: dict[str, Any] = {"now": NOW, "holdout": AUC, "last_retrain_at": NOW - timedelta(days=40)}
    return Signals(**(base | kw))


def loop(**spec: Any) -> Loop:
    return Loop.model_validate(spec)


def test_no_trigger_on_means_no_retrain() -> None:
    decision = decide(Loop(), signals(new_rows=10**6, drift_streak=99))
    assert not decision.retrain and decision.trigger is None
    assert decision.reason == "No trigger fired."


def test_schedule_fires_once_every_has_passed() -> None:
    cfg = loop(triggers={"schedule": {"every": "7d"}})
    assert decide(cfg, signals(last_retrain_at=NOW - timedelta(days=8))).trigger == "schedule"
    assert decide(cfg, signals(last_retrain_at=NOW - timedelta(days=8))).retrain
    assert not decide(cfg, signals(last_retrain_at=NOW - timedelta(days=6))).retrain
    assert decide(cfg, signals(last_retrain_at=None)).retrain  # never retrained


def test_new_data_fires_at_min_rows() -> None:
    cfg = loop(triggers={"new_data": {"min_rows": 500}})
    assert not decide(cfg, signals(new_rows=499)).retrain
    decision = decide(cfg, signals(new_rows=500))
    assert decision.retrain and decision.trigger == "new_data"
    assert decision.details["new_rows"] == 500
    assert "500 new rows" in decision.reason


def test_drift_needs_its_persistence() -> None:
    cfg = loop(triggers={"drift": {"windows": 3}})
    assert not decide(cfg, signals(drift_streak=2)).retrain
    decision = decide(cfg, signals(drift_streak=3))
    assert decision.retrain and decision.trigger == "drift"


def test_performance_below_interval_fires_higher_is_better() -> None:
    cfg = loop(triggers={"performance": {}})
    inside = (window(2, labelled_rows=100, realized=0.885),)
    below = (window(2, labelled_rows=100, realized=0.85),)
    assert not decide(cfg, signals(windows=inside)).retrain
    decision = decide(cfg, signals(windows=below))
    assert decision.retrain and decision.trigger == "performance"
    assert decision.details["figure"] == "realized"


def test_performance_lower_is_better_fires_above_interval() -> None:
    cfg = loop(triggers={"performance": {}})
    worse = (window(2, labelled_rows=100, realized=2.5),)
    better = (window(2, labelled_rows=100, realized=1.5),)
    assert decide(cfg, signals(holdout=MAE, windows=worse)).retrain
    assert not decide(cfg, signals(holdout=MAE, windows=better)).retrain


def test_performance_uses_the_estimate_when_labels_are_late() -> None:
    late = (window(3, labelled_rows=100, realized=0.89), window(1, estimated=0.80))
    decision = decide(loop(triggers={"performance": {}}), signals(windows=late))
    assert decision.retrain and decision.details["figure"] == "estimated"
    off = loop(triggers={"performance": {"use_estimate": False}})
    assert not decide(off, signals(windows=late)).retrain  # the latest realized is fine


def test_manual_is_always_on_and_skips_the_cost_rule() -> None:
    cfg = loop(policy={"retrain_cost": 1e12})
    decision = decide(cfg, signals(manual_reason="new feature"))
    assert decision.retrain and decision.trigger == "manual"
    assert "new feature" in decision.reason


def test_manual_does_not_skip_the_budget() -> None:
    cfg = loop(policy={"max_retrains": 1, "period": "30d", "cooldown": "1h"})
    recent = (NOW - timedelta(days=2),)
    decision = decide(cfg, signals(manual_reason="x", recent_retrains=recent))
    assert not decision.retrain and "budget" in decision.reason


def test_cooldown_debounces() -> None:
    cfg = loop(triggers={"drift": {"windows": 1}}, policy={"cooldown": "2d"})
    soon = decide(cfg, signals(drift_streak=1, last_retrain_at=NOW - timedelta(hours=30)))
    assert not soon.retrain and soon.trigger == "drift" and "cooldown" in soon.reason
    later = decide(cfg, signals(drift_streak=1, last_retrain_at=NOW - timedelta(days=3)))
    assert later.retrain


def test_stuck_drift_signal_cannot_exceed_the_budget() -> None:
    cfg = loop(
        triggers={"drift": {"windows": 1}},
        policy={"cooldown": "1h", "max_retrains": 3, "period": "7d"},
    )
    retrains: list[datetime] = []
    now = NOW
    for _ in range(24 * 7):  # the alert never clears; the loop wakes every hour for a week
        decision = decide(
            cfg,
            Signals(
                now=now,
                holdout=AUC,
                drift_streak=99,
                last_retrain_at=retrains[-1] if retrains else None,
                recent_retrains=tuple(retrains),
            ),
        )
        if decision.retrain:
            retrains.append(now)
        now += timedelta(hours=1)
    assert len(retrains) == 3
    # the budget frees up as the period slides past the first retrain
    freed = decide(
        cfg,
        Signals(
            now=retrains[0] + timedelta(days=7, hours=1),
            holdout=AUC,
            drift_streak=99,
            last_retrain_at=retrains[-1],
            recent_retrains=tuple(retrains),
        ),
    )
    assert freed.retrain


def recovers(per_row: float, units: str = "abs_error") -> RecoverySignal:
    """A recovery estimate whose lower bound is ``per_row`` (what the cost rule weighs)."""
    return RecoverySignal(max(0.0, per_row), per_row + 0.1, per_row, 365, units, "refit", 0.9, {})


def test_cost_rule_retrains_when_gain_exceeds_cost() -> None:
    # A refit recovers 1.0 MAE per row out of time × 10 rows/day × 30 days = 300
    cfg = loop(triggers={"performance": {}}, policy={"retrain_cost": 250, "horizon": "30d"})
    sig = signals(
        holdout=MAE,
        windows=(window(1, labelled_rows=10, realized=3.0),),
        rows_per_day=10,
        recovery=recovers(1.0),
    )
    gain, details = expected_gain(cfg, sig)
    assert gain == pytest.approx(300.0)
    assert details["gain_units"] == "abs_error" and details["lost_per_row"] == pytest.approx(1.0)
    decision = decide(cfg, sig)
    assert decision.retrain and decision.details["expected_gain"] == pytest.approx(300.0)
    assert "exceeds the retrain cost" in decision.reason


def test_cost_rule_holds_back_when_gain_is_below_cost() -> None:
    cfg = loop(triggers={"performance": {}}, policy={"retrain_cost": 350, "horizon": "30d"})
    sig = signals(
        holdout=MAE,
        windows=(window(1, labelled_rows=10, realized=3.0),),
        rows_per_day=10,
        recovery=recovers(1.0),
    )
    decision = decide(cfg, sig)
    assert not decision.retrain and decision.trigger == "performance"
    assert "does not exceed" in decision.reason


def test_cost_rule_weighs_the_recovery_not_the_loss() -> None:
    # The champion lost 0.5 benefit per row since its holdout, but a refit recovers 0.2.
    cfg = loop(triggers={"performance": {}}, policy={"retrain_cost": 100, "horizon": "10d"})
    lost = (window(1, labelled_rows=100, realized=0.85, benefit_per_row=1.5),)
    sig = signals(windows=lost, rows_per_day=100, recovery=recovers(0.2, "benefit"))
    gain, details = expected_gain(cfg, sig)
    assert details["gain_units"] == "benefit" and details["lost_per_row"] == pytest.approx(0.5)
    assert gain == pytest.approx(0.2 * 100 * 10)


def test_cost_rule_counts_a_negative_bound_as_no_gain() -> None:
    cfg = loop(triggers={"schedule": {"every": "1d"}}, policy={"retrain_cost": 1})
    better = (window(1, labelled_rows=100, realized=0.95, benefit_per_row=3.0),)
    decision = decide(cfg, signals(windows=better, rows_per_day=1000, recovery=recovers(-0.3)))
    assert not decision.retrain and decision.details["expected_gain"] == 0.0


def test_cost_rule_without_a_recovery_estimate_waits() -> None:
    cfg = loop(triggers={"new_data": {"min_rows": 1}}, policy={"retrain_cost": 1})
    decision = decide(cfg, signals(new_rows=10))
    assert not decision.retrain and "two labelled windows" in decision.reason


def test_named_policies() -> None:
    spec_loop = loop(policy={"retrain_cost": 5})
    policies = {p.name: p for p in named_policies(spec_loop)}
    assert tuple(policies) == POLICY_NAMES
    stuck = signals(
        drift_streak=99,
        new_rows=10**6,
        windows=(window(1, labelled_rows=100, realized=0.5, benefit_per_row=-9.0),),
        rows_per_day=1000,
        last_retrain_at=NOW - timedelta(seconds=30),
    )
    assert not policies["never"].decide(stuck).retrain
    assert policies["periodic"].decide(stuck).retrain  # no cooldown
    assert policies["auto"].loop.policy.retrain_cost == 5
    assert policies["auto"].loop.triggers.drift is not None
    assert policies["drift"].loop.triggers.performance is None
    with pytest.raises(BadInput, match="unknown policy"):
        named_policy("sometimes", spec_loop)
