"""One policy's replay of a backtest, window by window: decide, retrain, gate, promote, record.

At each window boundary the policy decides from :class:`~mlcycle.loop.signals.Signals`
built from what its replay has seen; a retrain goes through the shared
:class:`~mlcycle.loop.backtest_replay.Replay` (the real pipeline and gate); a blessed
challenger is promoted at once (``direct``) or after shadowing the window's first rows
(``shadow``); the previous champion then shadows the new one until the window's labels
judge it (a failure rolls back); the window's served traffic is scored and recorded in
the policy's :class:`~mlcycle.loop.backtest_result.PolicyResult`. Everything one policy
knows lives in its own state; only the replay is shared.

Example:
    >>> result = replay_policy(replay, named_policies(spec.loop, ["auto"])[0])
    >>> result.retrains, [w["window"] for w in result.windows][:2]
    (1, ['2013-07', '2013-08'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.errors import BadInput, MlcycleError
from mlcycle.loop.backtest_replay import Model, Replay, Window
from mlcycle.loop.backtest_result import PolicyResult
from mlcycle.loop.backtest_traffic import Scored, drift_alert, labels_frame, log_rows, realized
from mlcycle.loop.policies import NamedPolicy
from mlcycle.loop.signals import Signals, WindowSignal
from mlcycle.spec import LOWER_IS_BETTER, Spec

__all__ = ["Served", "replay_policy"]


@dataclass
class _State:
    """What one policy's replay knows at a boundary."""

    champion: Model
    signals: list[WindowSignal] = field(default_factory=list)
    retrain_times: list[datetime] = field(default_factory=list)
    rollback_times: list[datetime] = field(default_factory=list)
    challenger: Model | None = None
    watching: Model | None = None  # the previous champion, shadowing the new one
    watch_log: list[pd.DataFrame] = field(default_factory=list)
    watch_started: datetime | None = None
    stopped: str | None = None


def _signals(replay: Replay, state: _State, now: datetime, window_index: int) -> Signals:
    windows = replay.windows
    seen = state.signals
    streak = 0
    for w in reversed(seen):
        if not w.drift_alert:
            break
        streak += 1
    last = seen[-1] if seen else None
    days = max((last.end - last.start).total_seconds() / 86400, 1e-9) if last else 1.0
    new_rows = sum(len(w.rows) for w in windows[state.champion.data_until : window_index])
    return Signals(
        now=now,
        holdout=state.champion.holdout,
        windows=tuple(seen),
        last_retrain_at=state.retrain_times[-1] if state.retrain_times else windows[0].start,
        recent_retrains=tuple(state.retrain_times),
        new_rows=new_rows,
        drift_streak=streak,
        rows_per_day=(last.rows / days) if last else 0.0,
        recovery=replay.recovery(state.champion, window_index),
    )


def _decide(
    replay: Replay, policy: NamedPolicy, state: _State, k: int, result: PolicyResult
) -> dict[str, Any]:
    """The decision at the start of window ``k`` and, if it says so, the retrain."""
    window = replay.windows[k]
    events: list[dict[str, Any]] = []
    if state.stopped:
        return {"decision": {"retrain": False, "reason": state.stopped}, "events": events}
    decision = policy.decide(_signals(replay, state, window.start, k))
    record = {
        "retrain": decision.retrain,
        "trigger": decision.trigger,
        "reason": decision.reason,
        "details": decision.details,
    }
    if not decision.retrain:
        return {"decision": record, "events": events}
    result.retrains += 1
    state.retrain_times.append(window.start)
    try:
        version, blessed, failed = replay.train(policy.name, k, state.champion.bundle_id)
    except MlcycleError as exc:
        events.append({"kind": "retrain_failed", "reason": exc.message})
        return {"decision": record, "events": events}
    events.append({"kind": "retrain", "version": version, "blessed": blessed})
    if not blessed:
        events.append({"kind": "rejected", "version": version, "reason": f"gate: {failed}"})
        return {"decision": record, "events": events}
    state.challenger = replay.load(policy.name, version, k)
    return {"decision": record, "events": events}


def _promote(replay: Replay, policy: str, state: _State, reason: str) -> None:
    from mlcycle.pipeline.stage_ops import Registry

    assert state.challenger is not None
    Registry(replay.store).promote(
        replay.model_name(policy),
        state.challenger.version,
        reason=reason,
        expected=state.champion.version,
    )
    state.watching, state.champion, state.challenger = state.champion, state.challenger, None
    state.watch_log = []


def _replay_window(
    replay: Replay, policy: NamedPolicy, state: _State, k: int, result: PolicyResult
) -> None:
    """Decide at the boundary, serve window ``k``, then judge it once its labels arrive."""
    window = replay.windows[k]
    step = _decide(replay, policy, state, k, result) if k > 0 else {"decision": None, "events": []}
    events: list[dict[str, Any]] = step["events"]
    if state.challenger is not None and replay.spec.loop.mode == "direct":
        _promote(replay, policy.name, state, "blessed by the gate (backtest, direct mode)")
        state.watch_started = replay.windows[k].start
        result.promotions += 1
        events.append({"kind": "promote", "version": state.champion.version, "at": 0})
    served = _serve(replay, policy.name, state, k)
    if served.promoted_at is not None:
        result.promotions += 1
        events.append(
            {"kind": "promote", "version": state.champion.version, "at": served.promoted_at}
        )
    events.extend(served.events)
    if served.rolled_back:
        result.rollbacks += 1
        state.rollback_times.append(window.end)
        _breaker(replay, state, window.end)
    state.signals.append(served.signal)
    result.score += served.value
    result.windows.append(
        {
            "window": window.label,
            "rows": len(window.rows),
            "champion": served.champion_version,
            "metric": served.metric,
            "benefit": served.benefit,
            "value": served.value,
            "drift_alert": served.signal.drift_alert,
            "decision": step["decision"],
            "events": events,
        }
    )


@dataclass
class Served:
    """What a window's traffic came to: its champion at the end, its figures, its events."""

    champion_version: int
    metric: float | None
    benefit: float | None
    value: float
    signal: WindowSignal
    promoted_at: int | None = None
    rolled_back: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Traffic:
    """One window's rows, their ids and labels, and each model's scores on them (cached)."""

    replay: Replay
    k: int
    ids: list[str]
    labels: pd.DataFrame
    scores: dict[int, Scored] = field(default_factory=dict)

    @property
    def spec(self) -> Spec:
        return self.replay.spec

    @property
    def window(self) -> Window:
        return self.replay.windows[self.k]

    def of(self, model: Model) -> Scored:
        if model.version not in self.scores:
            self.scores[model.version] = self.replay.scored(model, self.k)
        return self.scores[model.version]

    def log(self, model: Model, role: str, part: slice) -> pd.DataFrame:
        return log_rows(
            self.of(model).take(part),
            self.ids[part],
            self.window.rows["_ts"].iloc[part],
            role=role,
            version=model.version,
            task=self.spec.problem.task,
        )


def _serve(replay: Replay, policy: str, state: _State, k: int) -> Served:
    """Serve window ``k``: shadow a challenger, promote it, watch it, then score the window."""
    spec, window = replay.spec, replay.windows[k]
    rows, n = window.rows, len(window.rows)
    id_column = spec.problem.id_column
    ids = [f"{k}-{i}" for i in range(n)] if id_column is None else rows[id_column].astype(str)
    traffic = _Traffic(replay, k, list(ids), labels_frame(list(ids), rows[spec.problem.target]))
    events: list[dict[str, Any]] = []
    segments: list[tuple[Model, slice]] = [(state.champion, slice(0, n))]
    first_champion = state.champion
    promoted_at = None
    if state.challenger is not None:
        promoted_at = _shadow(replay, policy, state, traffic, events)
        if promoted_at is not None and promoted_at < n:
            segments = [
                (first_champion, slice(0, promoted_at)),
                (state.champion, slice(promoted_at, n)),
            ]
    rolled_back = False
    if state.watching is not None:
        start = promoted_at if promoted_at is not None else 0
        if start < n:
            part = slice(start, n)
            state.watch_log.append(
                pd.concat(
                    [
                        traffic.log(state.champion, "champion", part),
                        traffic.log(state.watching, "shadow", part),
                        traffic.labels.iloc[part].assign(role="label"),
                    ],
                    ignore_index=True,
                )
            )
        rolled_back = _watch(replay, policy, state, window.end, events)
    return _account(
        replay, state, traffic, segments, first_champion, promoted_at, rolled_back, events
    )


def _shadow(
    replay: Replay, policy: str, state: _State, traffic: _Traffic, events: list[dict[str, Any]]
) -> int | None:
    """Shadow the challenger on the window's first rows; the row it took over at, or None."""
    from mlcycle.loop.verdicts import SHADOW_GRACE_SECONDS, shadow_verdict

    spec, rows = replay.spec, traffic.window.rows
    assert state.challenger is not None
    shadow = spec.loop.shadow
    ts = rows["_ts"]
    elapsed = ts - ts.iloc[0]
    ready = np.flatnonzero(
        (np.arange(len(rows)) + 1 >= shadow.min_rows) & (elapsed >= shadow.min_duration).to_numpy()
    )
    # Enough rows and time within the window: judged then by guardrails (labels come
    # later). Otherwise the whole window is shadowed and judged with its labels.
    end = int(ready[0]) + 1 if len(ready) else len(rows)
    labels = traffic.labels.iloc[0:0] if len(ready) else traffic.labels
    now = (
        ts.iloc[end - 1].to_pydatetime() + timedelta(seconds=SHADOW_GRACE_SECONDS + 1)
        if len(ready)
        else traffic.window.end
    )
    part = slice(0, end)
    log = pd.concat(
        [
            traffic.log(state.champion, "champion", part),
            traffic.log(state.challenger, "shadow", part),
        ],
        ignore_index=True,
    )
    champion = spec.gates.champion
    verdict = shadow_verdict(
        log,
        labels,
        task=spec.problem.task,
        metric=spec.problem.metric,
        positive=None if spec.problem.positive_label is None else str(spec.problem.positive_label),
        champion=state.champion.version,
        challenger=state.challenger.version,
        shadow=shadow,
        started=ts.iloc[0].to_pydatetime(),
        now=now,
        mode=champion.mode,
        tolerance=champion.tolerance,
    )
    version = state.challenger.version
    if verdict.status != "passed":
        why = (
            verdict.reason
            if verdict.status == "failed"
            else f"not judged in time: {verdict.reason}"
        )
        events.append({"kind": "rejected", "version": version, "reason": f"shadow: {why}"})
        state.challenger = None
        return None
    state.watch_started = now
    _promote(replay, policy, state, f"backtest: shadow passed — {verdict.reason}")
    return end


def _watch(
    replay: Replay, policy: str, state: _State, now: datetime, events: list[dict[str, Any]]
) -> bool:
    """Judge the watched champion once the window's labels are in; roll back if it fails."""
    from mlcycle.loop.verdicts import watch_verdict
    from mlcycle.pipeline.stage_ops import Registry

    spec = replay.spec
    assert state.watching is not None and state.watch_started is not None
    logged = pd.concat(state.watch_log, ignore_index=True)
    is_label = logged["role"] == "label"
    verdict = watch_verdict(
        logged[~is_label],
        logged.loc[is_label, ["row_id", "label"]],
        task=spec.problem.task,
        metric=spec.problem.metric,
        positive=None if spec.problem.positive_label is None else str(spec.problem.positive_label),
        champion=state.champion.version,
        previous=state.watching.version,
        watch=spec.loop.watch,
        guardrails=spec.loop.shadow.guardrails,
        started=state.watch_started,
        now=now,
    )
    if verdict.status == "pending":
        return False
    if verdict.status == "passed":
        events.append({"kind": "watch_passed", "version": state.champion.version})
        state.watching, state.watch_log = None, []
        return False
    Registry(replay.store).rollback(
        replay.model_name(policy), reason=f"backtest watch: {verdict.reason}"
    )
    events.append(
        {
            "kind": "rollback",
            "version": state.champion.version,
            "to": state.watching.version,
            "reason": verdict.reason,
        }
    )
    state.champion, state.watching, state.watch_log = state.watching, None, []
    return True


def _account(
    replay: Replay,
    state: _State,
    traffic: _Traffic,
    segments: list[tuple[Model, slice]],
    first_champion: Model,
    promoted_at: int | None,
    rolled_back: bool,
    events: list[dict[str, Any]],
) -> Served:
    """The window's served figures and score, and the signal its labels give the policy."""
    spec, window = replay.spec, traffic.window
    target = window.rows[spec.problem.target]
    served = Scored(
        np.concatenate([traffic.of(m).scores[part] for m, part in segments]),
        traffic.of(segments[-1][0]).classes,
        segments[-1][0].threshold,
    )
    metric, _ = realized(spec, target, served)
    benefit = None
    if spec.problem.task == "binary" and spec.problem.benefit is not None:
        benefit = 0.0
        for model, part in segments:
            _, per_row = realized(spec, target.iloc[part], traffic.of(model).take(part))
            benefit += (per_row or 0.0) * len(target.iloc[part])
        value = benefit
    else:
        sign = -1.0 if spec.problem.metric in LOWER_IS_BETTER else 1.0
        value = sign * (metric or 0.0) * len(target)
    champion = state.champion
    if champion is not first_champion or rolled_back:
        state.signals = []  # the windows before were another model's traffic
    figure, per_row = realized(spec, target, traffic.of(champion))
    enough = len(target) >= spec.monitor.min_labels
    signal = WindowSignal(
        start=window.start,
        end=window.end,
        rows=len(target),
        labelled_rows=len(target),
        realized=figure if enough else None,
        benefit_per_row=per_row if enough else None,
        drift_alert=drift_alert(spec, champion.reference(), window.rows, champion.bundle.schema()),
    )
    return Served(
        champion.version, metric, benefit, value, signal, promoted_at, rolled_back, events
    )


def _breaker(replay: Replay, state: _State, now: datetime) -> None:
    watch = replay.spec.loop.watch
    recent = [t for t in state.rollback_times if now - t < watch.breaker_period]
    if len(recent) >= watch.max_rollbacks:
        state.stopped = (
            f"the loop stopped itself: {len(recent)} rollbacks within "
            f"{watch.breaker_period.days} days (circuit breaker)"
        )


def replay_policy(replay: Replay, policy: NamedPolicy) -> PolicyResult:
    """Replay every window for ``policy``: its first champion, then decide, serve, record.

    Example:
        >>> replay_policy(replay, policy).to_dict()["rollbacks"]
        0
    """
    result = PolicyResult(policy.name, policy.description)
    version, blessed, failed = replay.train(policy.name, 0, None)
    if not blessed:
        raise BadInput(
            "the first model of the backtest was refused by the gate",
            failed,
            "make `mlcycle run` pass on the project's own data first",
        )
    from mlcycle.pipeline.stage_ops import Registry

    Registry(replay.store).promote(
        replay.model_name(policy.name), version, reason="backtest: the first champion"
    )
    state = _State(champion=replay.load(policy.name, version, 0))
    for k in range(len(replay.windows)):
        _replay_window(replay, policy, state, k, result)
    replay.listener(
        f"{policy.name}: {result.retrains} retrain(s), {result.promotions} promotion(s), "
        f"{result.rollbacks} rollback(s)"
    )
    return result
