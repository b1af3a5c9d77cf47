"""Replay a time-ordered dataset window by window, once per retrain policy, on a virtual clock.

The loop must earn its keep: this module measures whether it does. The project's
source data is the past (what the first champion is trained on); a second file of
later rows is the future, cut into calendar windows (``day``/``week``/``month``/
``quarter``/``year``). For each named policy (:mod:`mlcycle.loop.policies`):

1. the first champion is trained by the real pipeline (:meth:`Project.run`) on the past;
2. at each window boundary the policy decides (:func:`mlcycle.loop.policy.decide`) from
   :class:`~mlcycle.loop.signals.Signals` built from what the replay has seen: the
   realized metric and benefit of every window whose labels arrived (labels arrive one
   window late: at the end of the window), the drift of each window against the
   champion's reference sample (:func:`mlcycle.monitor.drift.drift_report`; a window
   "alerts" when at least half of the features drifted), the rows landed since the
   champion's data, the traffic rate, the retrain history, and what a retrain would
   recover (:func:`mlcycle.loop.recovery.estimate_recovery` on the champion's scores of
   the two latest labelled windows after its training data);
3. a retrain is the real pipeline, through the real gate, up to ``register``, on the
   data available then: the past plus every window whose labels arrived, cut by the
   spec's ``loop.window`` (written as a new source file in a scratch project);
4. a blessed model is promoted as the loop would: in ``direct`` mode at once; in
   ``shadow`` mode it scores the window's first rows beside the champion until
   ``loop.shadow.min_rows`` and ``min_duration`` are met and is promoted if
   :func:`~mlcycle.loop.verdicts.shadow_verdict` passes (labels are not in yet, so by
   guardrails); the previous champion then shadows the new one and
   :func:`~mlcycle.loop.verdicts.watch_verdict` judges it when the window's labels
   arrive — a failure rolls the champion back (the registry's own rollback).

Traffic is the window's rows scored by whichever model is champion at that row. The
score of a policy is its realized value minus ``loop.policy.retrain_cost`` × retrains:
with a benefit matrix (binary), the realized benefit summed over every scored row;
without one, the primary metric × rows summed over the windows, negated when lower
is better (for MAE: minus the total absolute error). Higher is better either way.

Every policy shares one scratch project and store (``.mlcycle/backtest`` under the
project): the data cut at a boundary is the same file whatever the policy, so
ingest, validate, split, train and evaluate run once per cut and are reused from the
step cache by every other policy that retrains there. Each policy registers under its
own model name, so the gate judges against that policy's own champion (a cut already
judged against the same champion bundle reuses that verdict). Each cut freezes its own
data contract: the replay measures policies, not the contract.

Example:
    >>> result = run_backtest(Project.load("mlcycle.yaml"), window="month")
    >>> [(p.name, p.retrains) for p in result.policies]
    [('never', 0), ('periodic', 5), ('drift', 2), ('performance', 3), ('auto', 1)]
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput, MlcycleError
from mlcycle.loop.backtest_traffic import (
    Scored,
    drift_alert,
    labels_frame,
    log_rows,
    realized,
    score_rows,
)
from mlcycle.loop.policies import DEFAULT_POLICY, POLICY_NAMES, NamedPolicy, named_policies
from mlcycle.loop.recovery import Labelled, estimate_recovery
from mlcycle.loop.signals import HoldoutSignal, RecoverySignal, Signals, WindowSignal
from mlcycle.pipeline.project import Project
from mlcycle.spec import LOWER_IS_BETTER, Spec
from mlcycle.store import Store

__all__ = [
    "UNITS",
    "BacktestResult",
    "PolicyResult",
    "Replay",
    "cut_windows",
    "run_backtest",
]

#: Calendar units a future can be cut into, and their pandas period codes.
UNITS = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}
Listener = Callable[[str], None]


@dataclass(frozen=True)
class Window:
    """One slice of the future: its label, its bounds and its rows (time-ordered)."""

    label: str
    start: datetime
    end: datetime
    rows: pd.DataFrame


def cut_windows(future: pd.DataFrame, ts_column: str, unit: str) -> list[Window]:
    """Cut the future rows into calendar windows of ``unit``, oldest first, empty ones left out.

    Example:
        >>> [w.label for w in cut_windows(frame, "time_hour", "month")][:2]
        ['2013-07', '2013-08']
    """
    if unit not in UNITS:
        raise BadInput(
            f"unknown backtest window '{unit}'",
            "the future is cut into calendar windows",
            f"use one of: {', '.join(UNITS)}",
        )
    ts = pd.to_datetime(future[ts_column], utc=True)
    periods = ts.dt.tz_localize(None).dt.to_period(UNITS[unit])
    frame = future.assign(_ts=ts, _period=periods).sort_values("_ts", kind="stable")
    windows = []
    for key, rows in frame.groupby("_period", sort=True):
        period: Any = key
        start = pd.Timestamp(period.start_time).tz_localize("UTC").to_pydatetime()
        end = pd.Timestamp(period.end_time).tz_localize("UTC").to_pydatetime()
        windows.append(Window(str(period), start, end, rows.reset_index(drop=True)))
    return windows


@dataclass
class Model:
    """A registered version of one policy's model, loaded for scoring."""

    version: int
    bundle_id: str
    bundle: Bundle
    fitted: Any
    holdout: HoldoutSignal
    threshold: float | None
    data_until: int  # how many future windows its training data holds
    _reference: pd.DataFrame | None = None

    def reference(self) -> pd.DataFrame:
        """The bundle's reference sample (read once), for the drift of each window."""
        if self._reference is None:
            self._reference = self.bundle.reference()
        return self._reference


@dataclass
class PolicyResult:
    """One policy's replay: its score, its counts, and one record per window."""

    name: str
    description: str
    score: float = 0.0
    retrains: int = 0
    promotions: int = 0
    rollbacks: int = 0
    windows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        metrics = [w["metric"] for w in self.windows if w["metric"] is not None]
        return {
            "name": self.name,
            "description": self.description,
            "score": self.score,
            "retrains": self.retrains,
            "promotions": self.promotions,
            "rollbacks": self.rollbacks,
            "mean_metric": float(np.mean(metrics)) if metrics else None,
            "windows": self.windows,
        }


@dataclass
class BacktestResult:
    """Every policy's replay, the default policy's name, and how the score is defined."""

    project: str
    metric: str
    unit: str
    score_units: str
    retrain_cost: float
    policies: list[PolicyResult]
    seconds: float = 0.0
    pipeline: dict[str, int] = field(default_factory=dict)
    default: str = DEFAULT_POLICY

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "project": self.project,
            "metric": self.metric,
            "window": self.unit,
            "score_units": self.score_units,
            "retrain_cost": self.retrain_cost,
            "seconds": round(self.seconds, 2),
            "pipeline": self.pipeline,
            "policies": [p.to_dict() for p in self.policies],
        }


class _ScratchProject(Project):
    """The backtest's project: the user's spec variants over a private SQLite store.

    Never the user's store (``MLCYCLE_STORE_URL`` included): the replay registers and
    promotes dozens of versions no one should serve.
    """

    def __init__(self, spec_path: Path, spec: Spec, store: Store) -> None:
        super().__init__(spec_path, spec)
        self._scratch = store

    @property
    def store(self) -> Store:
        return self._scratch

    def close(self) -> None:
        """The store is shared by every variant; :class:`Replay` closes it."""


class Replay:
    """The shared scratch project: data cuts, real pipeline runs, registered versions.

    Example:
        >>> replay = Replay(project, windows, work_dir=Path(".mlcycle/backtest"))
        >>> model = replay.train("auto", 0)     # the first champion of policy "auto"
    """

    def __init__(
        self,
        project: Project,
        past: pd.DataFrame,
        windows: Sequence[Window],
        *,
        work_dir: Path,
        listener: Listener | None = None,
    ) -> None:
        self.project = project
        self.spec = project.spec
        self.past = past
        self.windows = list(windows)
        self.work_dir = work_dir
        for folder in ("data", "contracts"):
            (work_dir / folder).mkdir(parents=True, exist_ok=True)
        home = work_dir / ".mlcycle"
        self.store = Store.open(
            work_dir, url=f"sqlite:///{home / 'mlcycle.db'}", artifacts_url=str(home / "artifacts")
        )
        self.run_tag = uuid.uuid4().hex[:6]
        self.listener = listener or (lambda _: None)
        self.counts = {"runs": 0, "steps_ran": 0, "steps_cached": 0, "verdicts_reused": 0}
        self._judged: dict[tuple[str, str | None], tuple[str, bool, str]] = {}
        self._scored: dict[tuple[str, int], Scored] = {}

    def scored(self, model: Model, k: int) -> Scored:
        """``model``'s scores on window ``k`` (once per bundle: policies share them)."""
        key = (model.bundle_id, k)
        if key not in self._scored:
            self._scored[key] = score_rows(
                self.spec, model.fitted, self.windows[k].rows, threshold=model.threshold
            )
        return self._scored[key]

    def recovery(self, model: Model, k: int) -> RecoverySignal | None:
        """What retraining ``model`` at boundary ``k`` would recover, from its own scores.

        The two latest windows labelled by then (labels arrive at a window's end) that
        lie after ``model``'s training data: the correction is learned on the first and
        tested on the second (:func:`~mlcycle.loop.recovery.estimate_recovery`).
        """
        from mlcycle.pipeline.stage_ops import encode_labels

        if k - model.data_until < 2:
            return None
        problem = self.spec.problem
        parts = []
        for j in (k - 2, k - 1):
            target = self.windows[j].rows[problem.target].to_numpy()
            if problem.task == "binary":
                target = encode_labels("binary", target, positive_label=problem.positive_label)
            scored = self.scored(model, j)
            classes = None if scored.classes is None else tuple(scored.classes)
            parts.append(Labelled(target, scored.scores, classes))
        return estimate_recovery(
            problem.task,
            problem.metric,
            parts[0],
            parts[1],
            threshold=model.threshold,
            benefit=None if problem.benefit is None else problem.benefit.model_dump(),
        )

    def model_name(self, policy: str) -> str:
        return f"{self.spec.project}-bt{self.run_tag}-{policy}"

    def cut(self, until: int) -> tuple[str, str]:
        """The training data once ``until`` future windows are labelled: (path, source name).

        Written once per content, so every policy retraining here reads the same file
        and the pipeline's step cache reuses ingest … evaluate.
        """
        parts = [
            self.past,
            *(w.rows.drop(columns=["_ts", "_period"]) for w in self.windows[:until]),
        ]
        frame = pd.concat(parts, ignore_index=True)
        frame = _training_window(frame, self.spec, self.windows[until - 1].end if until else None)
        key = hashlib.sha256(
            pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
        ).hexdigest()[:12]
        name = f"bt{key}"
        path = self.work_dir / "data" / f"{name}.parquet"
        if not path.is_file():
            tmp = path.with_suffix(".tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)
        return f"data/{name}.parquet", name

    def train(self, policy: str, until: int, champion: str | None) -> tuple[int, bool, str]:
        """Train on the cut of ``until`` windows and judge it against ``champion`` (a bundle id).

        Returns (version, blessed, the gate's failures). The real pipeline runs up to
        ``register``; when another policy already judged this very cut against this very
        champion bundle, the gate's inputs are all equal, so its bundle and verdict are
        registered under this policy's name instead of judging them again.
        """
        from mlcycle.pipeline.stage_ops import Registry

        path, source_name = self.cut(until)
        seen = self._judged.get((path, champion))
        if seen is not None:
            bundle_id, blessed, failed = seen
            version = Registry(self.store).register(
                self.model_name(policy), bundle_id, blessed=blessed
            )
            self.counts["verdicts_reused"] += 1
            return version, blessed, failed
        data = self.spec.data
        source = data.source.model_copy(update={"path": path, "name": source_name})
        spec = self.spec.model_copy(
            update={
                "project": self.model_name(policy),
                # Each cut freezes its own data contract from its own rows: the replay
                # measures retrain policies, not the contract (live, a new category
                # quarantines the data until someone accepts it).
                "data": data.model_copy(
                    update={"source": source, "schema_file": f"contracts/{source_name}.yaml"}
                ),
            }
        )
        project = _ScratchProject(self.work_dir / "mlcycle.yaml", spec, self.store)
        started = time.perf_counter()
        report = project.run(until="register")
        self.counts["runs"] += 1
        for step in report.steps:
            key = "steps_cached" if step.status == "cached" else "steps_ran"
            self.counts[key] += 1
        gate = next(s for s in report.steps if s.step == "gate")
        register = next(s for s in report.steps if s.step == "register")
        version = int(register.summary["version"])
        blessed = bool(register.summary["blessed"])
        failed = "; ".join(gate.summary.get("failed", []) or [])
        info = next(v for v in Registry(self.store).versions(spec.project) if v.version == version)
        self._judged[(path, champion)] = (info.bundle_id, blessed, failed)
        self.listener(
            f"{policy}: trained v{version} on {len(self.past)}+{until} window(s) "
            f"({'blessed' if blessed else 'refused: ' + failed}) "
            f"in {time.perf_counter() - started:.1f}s"
        )
        return version, blessed, failed

    def load(self, policy: str, version: int, until: int) -> Model:
        """A registered version, its fitted model and its holdout figures."""
        from mlcycle.pipeline.stage_ops import Registry

        resolved, bundle = Registry(self.store).bundle(f"{self.model_name(policy)}/{version}")
        evaluation = bundle.evaluation()
        return Model(
            version=version,
            bundle_id=resolved.bundle_id,
            bundle=bundle,
            fitted=bundle.load_model(),
            holdout=holdout_of(evaluation, self.spec.problem.metric),
            threshold=bundle.meta().decision_threshold,
            data_until=until,
        )

    def close(self) -> None:
        self.store.close()


def holdout_of(evaluation: Any, metric: str) -> HoldoutSignal:
    """The candidate's holdout figure for ``metric`` with its interval and benefit per row."""
    value = float(evaluation.metrics["candidate"][metric])
    low, high = evaluation.intervals.get("candidate", {}).get(metric, (value, value))
    benefit = evaluation.benefit.per_row.get("candidate") if evaluation.benefit else None
    return HoldoutSignal(
        metric=metric,
        value=value,
        ci_low=float(low),
        ci_high=float(high),
        higher_is_better=metric not in LOWER_IS_BETTER,
        benefit_per_row=None if benefit is None else float(benefit),
    )


def _training_window(frame: pd.DataFrame, spec: Spec, now: datetime | None) -> pd.DataFrame:
    """Keep the rows ``loop.window`` names (all, the last N days, or the last N rows)."""
    window = spec.loop.window
    if window.last_rows is not None:
        return frame.tail(window.last_rows).reset_index(drop=True)
    ts_column = spec.problem.timestamp_column
    if window.last_days is not None and ts_column is not None and now is not None:
        ts = pd.to_datetime(frame[ts_column], utc=True)
        since = pd.Timestamp(now) - pd.Timedelta(days=window.last_days)
        return frame[ts >= since].reset_index(drop=True)
    return frame


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


def run_backtest(
    project: Project,
    *,
    future: Path | None = None,
    window: str = "month",
    policies: Sequence[str] = POLICY_NAMES,
    work_dir: Path | None = None,
    listener: Listener | None = None,
) -> BacktestResult:
    """Replay the future once per policy and score each (see the module docstring).

    ``future`` defaults to the source file with ``_future`` before its suffix
    (``data/flights.parquet`` → ``data/flights_future.parquet``, as the examples write).

    Example:
        >>> run_backtest(Project.load("."), window="year", policies=["never", "auto"]).default
        'auto'
    """
    started = time.perf_counter()
    spec = project.spec
    chosen = named_policies(spec.loop, policies)
    past, future_rows = _read_data(project, future)
    ts_column = spec.problem.timestamp_column
    assert ts_column is not None  # _read_data checked it
    windows = cut_windows(future_rows, ts_column, window)
    if len(windows) < 2:
        raise BadInput(
            f"the future holds {len(windows)} {window} window(s)",
            "a backtest needs at least two windows: one to serve, one to act on",
            "pass a shorter --windows unit or more future data",
        )
    replay = Replay(
        project,
        past,
        windows,
        work_dir=work_dir or project.base_dir / ".mlcycle" / "backtest",
        listener=listener,
    )
    try:
        results = [_replay_policy(replay, policy) for policy in chosen]
    finally:
        replay.close()
    cost = spec.loop.policy.retrain_cost
    for result in results:
        result.score -= cost * result.retrains
    return BacktestResult(
        project=spec.project,
        metric=spec.problem.metric,
        unit=window,
        score_units=score_units(spec),
        retrain_cost=cost,
        policies=results,
        seconds=time.perf_counter() - started,
        pipeline=dict(replay.counts),
    )


def _replay_policy(replay: Replay, policy: NamedPolicy) -> PolicyResult:
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


def score_units(spec: Spec) -> str:
    """What a policy's score counts, in words (for the report and the docs)."""
    metric = spec.problem.metric
    if spec.problem.task == "binary" and spec.problem.benefit is not None:
        return "realized benefit (benefit-matrix units) − retrain_cost × retrains"
    sign = "−" if metric in LOWER_IS_BETTER else "+"
    return f"{sign}{metric} × rows, summed over windows − retrain_cost × retrains"


def _read_data(project: Project, future: Path | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The past (the project's source file) and the future rows, both checked."""
    spec = project.spec
    if spec.problem.timestamp_column is None:
        raise BadInput(
            "the spec has no problem.timestamp_column",
            "a backtest replays the future in time order",
            "set problem.timestamp_column to the column holding each row's time",
        )
    source = spec.data.source
    if source.path is None:
        raise BadInput(
            "the backtest reads the past from a file source",
            f"data.source is a SQL query ({source.sql})",
            "export the training data to Parquet and point data.source.path at it",
        )
    past_path = project.base_dir / source.path
    if future is None:
        future = past_path.with_name(f"{past_path.stem}_future{past_path.suffix}")
    future = future if future.is_absolute() else project.base_dir / future
    for what, path in (("past (data.source.path)", past_path), ("future", future)):
        if not path.is_file():
            raise BadInput(
                f"the {what} file {path} does not exist",
                "the backtest trains on the past and replays the future",
                "pass --future PATH (Parquet or CSV, the source's columns, time-ordered)",
            )
    past, rows = (_read(p) for p in (past_path, future))
    missing = sorted(set(past.columns) - set(rows.columns))
    if missing:
        raise BadInput(
            f"the future file {future} lacks columns {', '.join(missing)}",
            "the future rows are scored by models trained on the past",
            "give the future file the source's columns (the target included, for the labels)",
        )
    return past, rows[list(past.columns)]


def _read(path: Path) -> pd.DataFrame:
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)
