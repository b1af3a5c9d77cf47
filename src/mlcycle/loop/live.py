"""What the live loop knows: :class:`~mlcycle.loop.signals.Signals` read from the store.

- the champion (registry), its holdout figure and interval (its bundle's evaluation);
- the monitoring windows of the champion's traffic (``monitor_windows``: realized and
  estimated primary metric, labelled rows) and whether a drift alert fired in each
  (``monitor_alerts``; the loop's own alerts excluded);
- new valid rows: the rows of landed, usable raw partitions the champion's training
  dataset version does not hold (landed by ``mlcycle data ingest``);
- the loop's own history (last retrain, recent retrains) and pending manual triggers.

Example:
    >>> champion = read_champion(project)
    >>> signals = gather(project, champion, LoopStore(project.store), now=datetime.now(UTC))
    >>> signals.new_rows
    1200
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from mlcycle.errors import BadInput
from mlcycle.loop.signals import HoldoutSignal, Signals, WindowSignal
from mlcycle.loop.state import LoopStore, parse
from mlcycle.pipeline.stage_ops import list_partitions
from mlcycle.spec import LOWER_IS_BETTER
from mlcycle.store import tables as t

if TYPE_CHECKING:
    from mlcycle.artifacts import BundleMeta, Evaluation
    from mlcycle.pipeline.project import Project


@dataclass(frozen=True)
class Champion:
    """The reigning champion: its version, bundle, registration time and what it learned from."""

    version: int
    bundle_id: str
    registered_at: datetime
    meta: BundleMeta
    evaluation: Evaluation


def read_champion(project: Project) -> Champion | None:
    """The model's champion, or None when nothing was promoted yet."""
    registry = project.registry
    name = project.name
    version = registry.alias_version(name, "champion")
    if version is None:
        return None
    info = next(v for v in registry.versions(name) if v.version == version)
    _, bundle = registry.bundle(f"{name}/{version}")
    return Champion(
        version, info.bundle_id, parse(info.created_at), bundle.meta(), bundle.evaluation()
    )


def holdout_signal(evaluation: Evaluation, metric: str) -> HoldoutSignal:
    """The candidate's holdout figure for ``metric`` (the champion's, in its own bundle)."""
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


def window_signals(project: Project, champion: Champion, metric: str) -> list[WindowSignal]:
    """The monitoring windows of the champion's traffic, oldest first."""
    name = project.name
    with project.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                t.monitor_windows.c.window,
                t.monitor_windows.c.start,
                t.monitor_windows.c.end,
                t.monitor_windows.c.rows,
                t.monitor_windows.c.metrics,
            )
            .where(
                t.monitor_windows.c.model == name,
                t.monitor_windows.c.model_version == champion.version,
            )
            .order_by(t.monitor_windows.c.start)
        ).all()
        alerted = {
            str(r[0])
            for r in conn.execute(
                sa.select(t.monitor_alerts.c.window).where(
                    t.monitor_alerts.c.model == name,
                    t.monitor_alerts.c.rule.contains("drift"),
                    ~t.monitor_alerts.c.rule.startswith("loop:"),
                )
            )
        }
    found = []
    for key, start, end, count, text in rows:
        m = json.loads(text)
        realized, estimated = m.get(f"realized:{metric}"), m.get(f"estimated:{metric}")
        found.append(
            WindowSignal(
                start=parse(str(start)),
                end=parse(str(end)),
                rows=int(count),
                labelled_rows=int(m.get("labels") or 0),
                realized=None if realized is None else float(realized),
                estimated=None if estimated is None else float(estimated),
                drift_alert=str(key) in alerted,
            )
        )
    return found


def new_valid_rows(project: Project, champion: Champion) -> int:
    """Rows the next dataset version would add to the champion's training data.

    The raw rows of the usable partitions a new version would be built from that
    the champion's version does not hold, less those of the champion's partitions
    it would no longer hold (a file source lands each change as a whole snapshot
    that replaces the last one).
    """
    from mlcycle.pipeline.stage_ops import usable_partitions

    trained_on = set(project.catalog.dataset(champion.meta.dataset_id).partitions)
    source = project.spec.data.source
    every = {p.content_hash: p.rows for p in list_partitions(project.store, source.name)}
    try:
        upcoming = {p.content_hash: p.rows for p in usable_partitions(project.store, source)}
    except BadInput:
        return 0  # nothing usable landed (e.g. the newest snapshot is quarantined)
    added = sum(rows for h, rows in upcoming.items() if h not in trained_on)
    dropped = sum(every.get(h, 0) for h in trained_on if h not in upcoming)
    return max(0, added - dropped)


def gather(project: Project, champion: Champion, runs: LoopStore, *, now: datetime) -> Signals:
    """Everything :func:`mlcycle.loop.policy.decide` looks at, read from the store at ``now``."""
    metric = project.spec.problem.metric
    windows = window_signals(project, champion, metric)
    streak = 0
    for w in reversed(windows):
        if not w.drift_alert:
            break
        streak += 1
    history = runs.runs(project.name, limit=500)
    starts = sorted(parse(r.created_at) for r in history)
    span = (windows[-1].end - windows[0].start).total_seconds() / 86400 if windows else 0.0
    pending = runs.pending(project.name)
    return Signals(
        now=now,
        holdout=holdout_signal(champion.evaluation, metric),
        windows=tuple(windows),
        last_retrain_at=starts[-1] if starts else champion.registered_at,
        recent_retrains=tuple(starts),
        new_rows=new_valid_rows(project, champion),
        drift_streak=streak,
        rows_per_day=sum(w.rows for w in windows) / span if span > 0 else 0.0,
        manual_reason="; ".join(str(p["reason"]) for p in pending) or None,
    )
