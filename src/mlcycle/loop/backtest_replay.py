"""The backtest's shared replay: the virtual clock's windows and one scratch project.

What every policy of a backtest (:mod:`mlcycle.loop.backtest`) shares: the future cut
into calendar windows (:func:`cut_windows`), and a :class:`Replay` over one scratch
project and store that writes each data cut once, runs the real pipeline on it,
registers the versions each policy trains, loads them (:class:`Model`) and keeps
every model's scores on every window once (policies that serve the same bundle share
them). It knows no policy: what one policy decides and serves is
:mod:`mlcycle.loop.backtest_steps`.

Example:
    >>> windows = cut_windows(future, "time_hour", "month")
    >>> replay = Replay(project, past, windows, work_dir=Path(".mlcycle/backtest"))
    >>> version, blessed, failed = replay.train("auto", 0, None)   # the first champion
    >>> model = replay.load("auto", version, 0)
    >>> replay.scored(model, 1).scores[:3]
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput
from mlcycle.loop.backtest_traffic import Scored, score_rows
from mlcycle.loop.recovery import Labelled, estimate_recovery
from mlcycle.loop.signals import HoldoutSignal, RecoverySignal
from mlcycle.pipeline.project import Project
from mlcycle.spec import Spec
from mlcycle.store import Store

__all__ = ["UNITS", "Listener", "Model", "Replay", "Window", "cut_windows"]

#: Calendar units a future can be cut into, and their pandas period codes.
UNITS = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}
#: Receives one line of progress at a time (the CLI prints them).
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
            holdout=HoldoutSignal.of(evaluation, self.spec.problem.metric),
            threshold=bundle.meta().decision_threshold,
            data_until=until,
        )

    def close(self) -> None:
        self.store.close()


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
