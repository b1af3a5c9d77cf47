"""What the live loop knows: :class:`~mlcycle.loop.signals.Signals` read from the store.

- the champion (registry), its holdout figure and interval (its bundle's evaluation);
- the monitoring windows of the champion's traffic (``monitor_windows``: realized and
  estimated primary metric, labelled rows) and whether a drift alert fired in each
  (``monitor_alerts``; the loop's own alerts excluded);
- new valid rows: the rows of the newest valid dataset version (built by the data step)
  beyond the champion's, or, before one is built, the rows of landed, usable raw
  partitions (``mlcycle data ingest`` or the data step) the champion's version lacks;
- the loop's own history (last retrain, recent retrains) and pending manual triggers;
- what a retrain would recover (:func:`recovery_signal`): the champion's logged answers
  in its two latest labelled windows, joined to their labels.

Example:
    >>> champion = read_champion(project)
    >>> signals = gather(project, champion, LoopStore(project.store), now=datetime.now(UTC))
    >>> signals.new_rows
    1200
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from mlcycle.errors import BadInput
from mlcycle.loop.signals import HoldoutSignal, RecoverySignal, Signals, WindowSignal
from mlcycle.loop.state import LoopStore, parse
from mlcycle.pipeline.stage_ops import list_partitions
from mlcycle.store import tables as t

if TYPE_CHECKING:
    from mlcycle.artifacts import BundleMeta, Evaluation
    from mlcycle.loop.recovery import Labelled
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

    Raw partitions land the same way whether ``mlcycle data ingest`` or the data step
    of ``mlcycle run`` landed them. When the data step has already built (and the
    validate step passed) a version holding every usable partition, its rows are the
    count: after the transforms, validated. Otherwise the raw rows of the usable
    partitions a new version would be built from that the champion's version does not
    hold, less those of the champion's partitions it would no longer hold (a file
    source lands each change as a whole snapshot that replaces the last one).

    Example:
        >>> new_valid_rows(project, champion)    # 600 rows landed since the champion's data
        600
    """
    from mlcycle.pipeline.stage_ops import usable_partitions

    trained = project.catalog.dataset(champion.meta.dataset_id)
    trained_on = set(trained.partitions)
    source = project.spec.data.source
    every = {p.content_hash: p.rows for p in list_partitions(project.store, source.name)}
    try:
        upcoming = {p.content_hash: p.rows for p in usable_partitions(project.store, source)}
    except BadInput:
        return 0  # nothing usable landed (e.g. the newest snapshot is quarantined)
    built = project.catalog.previous_valid(source.name, excluding=champion.meta.dataset_id)
    if built is not None and set(built.partitions) == set(upcoming) != trained_on:
        # Appended partitions or a snapshot that replaced the champion's: the version's
        # rows beyond the champion's, both counted after the transforms.
        return max(0, built.rows - trained.rows)
    added = sum(rows for h, rows in upcoming.items() if h not in trained_on)
    dropped = sum(every.get(h, 0) for h in trained_on if h not in upcoming)
    return max(0, added - dropped)


def recovery_signal(
    project: Project, champion: Champion, windows: list[WindowSignal]
) -> RecoverySignal | None:
    """What retraining the champion would recover, from its own logged, labelled traffic.

    The two latest monitoring windows with a realized figure (enough labels): the rows
    the champion answered in each (role ``champion``, its version), joined to their
    labels by ``row_id``; :func:`~mlcycle.loop.recovery.estimate_recovery` learns the
    correction on the first and tests it on the second. None with fewer than two.

    Example:
        >>> recovery_signal(project, champion, window_signals(project, champion, "mae"))
        RecoverySignal(gain_per_row=0.84, ..., units='abs_error', ...)
    """
    from mlcycle import predlog
    from mlcycle.loop.recovery import estimate_recovery
    from mlcycle.pipeline.stage_ops import read_labels

    labelled = [w for w in windows if w.realized is not None]
    if len(labelled) < 2:
        return None
    previous, latest = labelled[-2:]
    name, problem = project.name, project.spec.problem
    root = predlog.predictions_root(project.store.home)
    first = f"date={previous.start.date().isoformat()}"
    paths = [p for p in predlog.list_files(root, name) if p.rsplit("/", 2)[-2] >= first]
    log = predlog.read_files(root, paths)
    labels = read_labels(project.store, name)
    if len(log) == 0 or len(labels) == 0:
        return None
    log = log[
        (log["role"] == "champion") & (log["model_version"].astype("int64") == champion.version)
    ]
    known = labels.drop_duplicates("row_id").set_index("row_id")["label"]
    log = log.assign(
        ts=pd.to_datetime(log["ts"], utc=True), label=log["row_id"].astype(str).map(known)
    )
    log = log[log["label"].notna()].drop_duplicates("row_id")
    positive = champion.meta.positive_label
    parts = []
    for window in (previous, latest):
        rows = log[(log["ts"] >= window.start) & (log["ts"] < window.end)]
        parts.append(_labelled(rows, problem.task, None if positive is None else str(positive)))
    return estimate_recovery(
        problem.task,
        problem.metric,
        parts[0],
        parts[1],
        threshold=champion.meta.decision_threshold,
        benefit=None if problem.benefit is None else problem.benefit.model_dump(),
    )


def _labelled(rows: pd.DataFrame, task: str, positive: str | None) -> Labelled:
    """One window's logged rows as the estimator takes them (labels and scores)."""
    from mlcycle.loop.recovery import Labelled

    labels = rows["label"].astype(str).to_numpy()
    if task == "regression":
        return Labelled(labels.astype("float64"), rows["prediction"].astype("float64").to_numpy())
    if task == "binary":
        return Labelled(
            (labels == positive).astype(int), rows["probability"].astype("float64").to_numpy()
        )
    columns = [c for c in rows.columns if str(c).startswith("proba_")]
    classes = tuple(str(c)[len("proba_") :] for c in columns)
    return Labelled(labels, rows[columns].astype("float64").to_numpy(), classes)


def gather(project: Project, champion: Champion, runs: LoopStore, *, now: datetime) -> Signals:
    """Everything :func:`mlcycle.loop.policy.decide` looks at, read from the store at ``now``.

    The recovery estimate reads the prediction log, so it is read only when the policy
    will weigh it: the cost rule is on and a trigger other than manual fires.
    """
    from mlcycle.loop.policy import proposals

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
    signals = Signals(
        now=now,
        holdout=HoldoutSignal.of(champion.evaluation, metric),
        windows=tuple(windows),
        last_retrain_at=starts[-1] if starts else champion.registered_at,
        recent_retrains=tuple(starts),
        new_rows=new_valid_rows(project, champion),
        drift_streak=streak,
        rows_per_day=sum(w.rows for w in windows) / span if span > 0 else 0.0,
        manual_reason="; ".join(str(p["reason"]) for p in pending) or None,
    )
    loop = project.spec.loop
    fired = [name for name, _, _ in proposals(loop, signals)]
    if loop.policy.retrain_cost > 0 and fired and fired[0] != "manual":
        signals = replace(signals, recovery=recovery_signal(project, champion, windows))
    return signals
