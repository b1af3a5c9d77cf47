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

The code is cut where the state is: :mod:`mlcycle.loop.backtest_replay` holds what
every policy shares (the windows, the scratch project, the scores cache),
:mod:`mlcycle.loop.backtest_steps` one policy's replay (decide, retrain, shadow,
promote, watch, record), :mod:`mlcycle.loop.backtest_result` the records handed back,
and :mod:`mlcycle.loop.backtest_traffic` the pure scoring of a window's rows; this
module reads the data and runs each policy.

Example:
    >>> result = run_backtest(Project.load("mlcycle.yaml"), window="month")
    >>> [(p.name, p.retrains) for p in result.policies]
    [('never', 0), ('periodic', 5), ('drift', 2), ('performance', 3), ('auto', 1)]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mlcycle.errors import BadInput
from mlcycle.loop.backtest_replay import Listener, Replay, cut_windows
from mlcycle.loop.backtest_result import BacktestResult, score_units
from mlcycle.loop.backtest_steps import replay_policy
from mlcycle.loop.policies import POLICY_NAMES, named_policies
from mlcycle.pipeline.project import Project

__all__ = ["run_backtest"]


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
        results = [replay_policy(replay, policy) for policy in chosen]
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
