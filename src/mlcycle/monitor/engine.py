"""Incremental monitoring of a model's prediction log against its bundle's reference.

:meth:`Monitor.run` reads only log files it has not seen (plus earlier files
sharing a window with new rows), computes per window: data drift per feature
(mlcycle's calibrated decision or Evidently's rules), the drift share,
prediction drift, multivariate drift (domain-classifier AUC, PCA
reconstruction error), the outlier-model anomaly rate and contract-rule
anomalies, the window's profile and the values training never saw, and the
label-free performance estimate (seasonal features: see :mod:`.window_metrics`).
Then, over every window, it joins the labels ingested so far and computes realized metrics (per
window, sliding, cumulative, with intervals), target drift, the estimate's
error and the concept-drift signal; scores each metric series with a robust
z; evaluates the alert rules and delivers alerts. What one window measures
lives in :mod:`.window_metrics`; what it is measured against (bundle rows or a
dataset version, and the persisted drift calibrations) in :mod:`.reference`.

Example:
    >>> mon = Monitor(store, Reference.from_bundle(folder, version=1), settings, root, base)
    >>> mon.calibration = CalibrationFile(home / "monitor" / "ab12.bundle.calibration.json")
    >>> mon.run()
    {'new_files': 6, 'windows': ['2013-07', ...], 'alerts': 3, 'delivered': 3, 'pending': 0}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlcycle import predlog
from mlcycle.errors import BadInput
from mlcycle.monitor import windows
from mlcycle.monitor.alerts import (
    Window,
    default_rules,
    deliver,
    evaluate_rules,
    sink_names,
    store_alerts,
)
from mlcycle.monitor.calibrate import NullModel
from mlcycle.monitor.labels import read_labels
from mlcycle.monitor.realized import LOG_COLUMNS, PRIMARY, update_performance, window_kind
from mlcycle.monitor.reference import CalibrationFile, Reference, check_frame
from mlcycle.monitor.window_metrics import MIN_ROWS, WindowMetrics
from mlcycle.spec import Monitor as MonitorSettings
from mlcycle.store import Store, now
from mlcycle.store import tables as t


@dataclass
class Monitor(WindowMetrics):
    """Monitoring state of one model: the store, its reference and the spec's settings."""

    store: Store
    reference: Reference
    settings: MonitorSettings
    root: str
    base_dir: Path
    primary: str | None = None
    #: Called as ``progress(text, done, total)`` on long work (see ``cli/monitor_progress``).
    progress: Callable[[str, int | None, int | None], None] | None = None
    #: Where the reference's drift calibrations persist between runs (None: memory only).
    calibration: CalibrationFile | None = None
    #: Seasonal features (the spec's ``data.features.seasonal``): drift reported, not alerted.
    seasonal: list[str] = field(default_factory=list)
    _nulls: dict[tuple[str, str, int], NullModel] = field(default_factory=dict)
    _pca: Any = None
    _encoded: np.ndarray | None = None

    @property
    def model(self) -> str:
        return self.reference.meta.name

    def _say(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if self.progress is not None:
            self.progress(text, done, total)

    # --- the run ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Read new log files, update the windows they touch, then performance and alerts."""
        files = predlog.list_files(self.root, self.model)
        seen = self._seen()
        new = [f for f in files if f not in seen]
        touched: list[str] = []
        # Labels update target drift of every window too, so check even without new files.
        self._check_same_reference()
        if new:
            frames = []
            for i, path in enumerate(new):
                self._say("reading new log files", i + 1, len(new))
                frames.append(self._read_checked(path))
            known = self._load_calibrations()
            touched = self._update_windows(new, frames, seen)
            self._save_calibrations(known)
        self._say("joining labels")
        self._update_performance()
        self._say("alerts")
        rules = self.settings.alerts or default_rules(
            self.settings,
            self.features,
            self.primary or PRIMARY[self.reference.meta.task],
            seasonal=self.seasonal_features,
        )
        all_windows = self.windows()
        fired = evaluate_rules(rules, all_windows)
        new_alerts = store_alerts(self.store, self.model, fired, sink_names(self.settings.sinks))
        counts = deliver(self.store, self.model, self.settings.sinks, self.base_dir)
        return {
            "model": self.model,
            "new_files": len(new),
            "windows_updated": touched,
            "windows": len(all_windows),
            "alerts_new": new_alerts,
            **counts,
        }

    def _seen(self) -> dict[str, dict[str, Any]]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.monitor_files)
                .where(t.monitor_files.c.model == self.model)
                .order_by(t.monitor_files.c.seen_at, t.monitor_files.c.path)
            ).mappings()
            return {r["path"]: dict(r) for r in rows}

    def _read_checked(self, path: str) -> pd.DataFrame:
        frame = predlog.read_files(self.root, [path])
        need = [*predlog.BASE_COLUMNS, *self.features]
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise BadInput(
                f"prediction log file {path} lacks column(s) {', '.join(missing)}",
                "every log row needs the base columns and each model feature",
                "fix the writer, or move the file out of the log folder and run again",
            )
        check_frame(frame, self.reference, f"prediction log file {path}")
        return frame

    def _check_same_reference(self) -> None:
        """Refuse to add windows against another reference than the stored ones used.

        A window series compared with two references would show a jump that is
        not drift; alerts and persistence would read it as one.
        """
        label = self.reference.label
        other = {str(w.metrics.get("reference", "bundle")) for w in self.windows()} - {label}
        if other:
            raise BadInput(
                f"the windows of {self.model} were computed against {', '.join(sorted(other))}, "
                f"not {label}",
                "one window series is compared with one reference, or its jumps are not drift",
                "monitor the log against the same reference, or compare a dataset version "
                "as a one-off with `mlcycle monitor run --current-version`",
            )

    def _load_calibrations(self) -> int:
        if self.calibration is not None and not self._nulls:
            self._nulls.update(self.calibration.load())
        return len(self._nulls)

    def _save_calibrations(self, known: int) -> None:
        if self.calibration is not None and len(self._nulls) > known:
            self.calibration.save(self._nulls)

    def check(self, frame: pd.DataFrame, where: str) -> dict[str, Any]:
        """Window metrics of a sample outside the log (a dataset version, a file); not stored.

        The sample is checked like a log file (features present, not retyped,
        not empty) and measured like a window: drift, prediction drift when it
        holds ``prediction``/``probability`` columns, multivariate drift,
        anomalies and the label-free estimate.

        Example:
            >>> mon.check(load_version(store, "latest").frame, "dataset version 692ef2")
            {'rows': 166668, 'drift_share': 0.083, ...}
        """
        if len(frame) == 0:
            raise BadInput(
                f"{where} has no rows",
                "drift compares the distribution of two samples",
                "point the current data at a non-empty dataset version or file",
            )
        check_frame(frame, self.reference, where)
        known = self._load_calibrations()
        metrics = self.window_metrics(frame)
        self._save_calibrations(known)
        metrics["current"] = where
        return metrics

    def _update_windows(
        self, new: list[str], frames: list[pd.DataFrame], seen: dict[str, dict[str, Any]]
    ) -> list[str]:
        """Recompute every window the new files touch, then record the files as seen."""
        window = self.settings.window
        per_rows = windows.rows_per_window(window)
        pos = sum(int(s["rows"]) for s in seen.values())
        parts = []
        for frame in frames:
            frame = frame.copy()
            frame["_offset"] = pos + np.arange(len(frame))
            pos += len(frame)
            parts.append(frame)
        fresh = pd.concat(parts, ignore_index=True)
        fresh["_window"] = windows.keys(fresh["ts"], window, fresh["_offset"].to_numpy())
        affected = sorted(set(fresh.loc[fresh["role"].isin(self.settings.roles), "_window"]))
        # Earlier files that share a window with the new rows are read again: a window is
        # always computed from all of its rows.
        old = self._read_overlapping(seen, affected)
        if old:
            both = pd.concat([*old, fresh.drop(columns="_window")], ignore_index=True)
            both["_window"] = windows.keys(both["ts"], window, both["_offset"].to_numpy())
        else:
            both = fresh
        both = both[both["role"].isin(self.settings.roles)]
        for i, key in enumerate(affected):
            first = not self._nulls and self.settings.drift_test != "evidently"
            self._say(
                f"window {key}" + (" (calibrating drift thresholds)" if first else ""),
                i,
                len(affected),
            )
            rows = both[both["_window"] == key]
            metrics = self.window_metrics(rows)
            if per_rows is not None:
                metrics["partial"] = len(rows) < per_rows
            self._save_window(key, rows, metrics)
        self._say("windows done", len(affected), len(affected))
        self._record_seen(new, frames)
        return affected

    def _read_overlapping(
        self, seen: dict[str, dict[str, Any]], keys: list[str]
    ) -> list[pd.DataFrame]:
        """The seen files holding rows of any window in ``keys``, with their row offsets.

        A time window overlaps a file by the file's time range; a ``rows:N``
        window by the file's place in the log's row order.
        """
        window = self.settings.window
        per_rows = windows.rows_per_window(window)
        out, start = [], 0
        for path, info in seen.items():
            lo, hi = pd.Timestamp(info["ts_min"]), pd.Timestamp(info["ts_max"])
            n = int(info["rows"])
            for key in keys:
                b = windows.bounds(key, window)
                if b is not None:
                    hit = lo < b[1] and hi >= b[0]
                else:
                    assert per_rows is not None
                    first = int(key.split("-")[1]) * per_rows
                    hit = start < first + per_rows and start + n > first
                if hit:
                    frame = self._read_checked(path)
                    frame["_offset"] = start + np.arange(len(frame))
                    out.append(frame)
                    break
            start += n
        return out

    def _record_seen(self, new: list[str], frames: list[pd.DataFrame]) -> None:
        """Remember the new files (rows, time range) so later runs skip them."""
        with self.store.engine.begin() as conn:
            stamp = now()
            for path, frame in zip(new, frames, strict=True):
                ts = pd.to_datetime(frame["ts"], utc=True)
                conn.execute(
                    t.monitor_files.insert().values(
                        model=self.model,
                        path=path,
                        rows=len(frame),
                        ts_min=(ts.min() if len(ts) else pd.Timestamp(0, tz="UTC")).isoformat(),
                        ts_max=(ts.max() if len(ts) else pd.Timestamp(0, tz="UTC")).isoformat(),
                        seen_at=stamp,
                    )
                )

    def _save_window(self, key: str, rows: pd.DataFrame, metrics: dict[str, Any]) -> None:
        versions = metrics.get("model_versions") or [self.reference.version]
        ts = pd.to_datetime(rows["ts"], utc=True)
        values = {
            "model_version": versions[-1],
            "start": ts.min().isoformat() if len(ts) else "",
            "end": ts.max().isoformat() if len(ts) else "",
            "rows": len(rows),
            "metrics": json.dumps(metrics, default=_json_default),
            "computed_at": now(),
        }
        with self.store.engine.begin() as conn:
            where = (t.monitor_windows.c.model == self.model) & (t.monitor_windows.c.window == key)
            exists = conn.execute(sa.select(t.monitor_windows.c.window).where(where)).first()
            if exists:
                conn.execute(t.monitor_windows.update().where(where).values(**values))
            else:
                conn.execute(
                    t.monitor_windows.insert().values(model=self.model, window=key, **values)
                )

    def windows(self) -> list[Window]:
        """Every window of the model, in time order, with its metrics."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.monitor_windows)
                .where(t.monitor_windows.c.model == self.model)
                .order_by(t.monitor_windows.c.start, t.monitor_windows.c.window)
            ).mappings()
            return [Window(r["window"], r["model_version"], json.loads(r["metrics"])) for r in rows]

    def window_rows(self, key: str) -> pd.DataFrame:
        """The logged rows of one window (read again from the files that overlap it)."""
        seen = self._seen()
        stored = {w.key: w.metrics for w in self.windows()}.get(key, {})
        # The window kind the window was computed with (a replay may use another
        # than the spec's).
        window = str(stored.get("window_kind", self.settings.window))
        b = windows.bounds(key, window)
        paths, starts, pos = [], [], 0
        for path, info in seen.items():
            if b is None or (
                pd.Timestamp(info["ts_min"]) < b[1] and pd.Timestamp(info["ts_max"]) >= b[0]
            ):
                paths.append(path)
                starts.append(pos)
            pos += int(info["rows"])
        frames = []
        for path, start in zip(paths, starts, strict=True):
            f = predlog.read_files(self.root, [path])
            f["_offset"] = start + np.arange(len(f))
            frames.append(f)
        if not frames:
            return pd.DataFrame(columns=[*predlog.BASE_COLUMNS, *self.features])
        rows = pd.concat(frames, ignore_index=True)
        rows = rows[windows.keys(rows["ts"], window, rows["_offset"].to_numpy()) == key]
        return rows[rows["role"].isin(self.settings.roles)].drop(columns="_offset")

    # --- the label side -----------------------------------------------------------

    def _update_performance(self) -> None:
        """Join the labels ingested so far and store every window's label-side metrics."""
        labels = read_labels(self.store, self.model)
        if labels.empty:
            return
        all_windows = self.windows()
        update_performance(
            all_windows,
            self._log_by_window(all_windows),
            labels,
            self.reference,
            self.settings,
            primary=self.primary or PRIMARY[self.reference.meta.task],
            nulls=self._nulls,
        )
        with self.store.engine.begin() as conn:
            for w in all_windows:
                conn.execute(
                    t.monitor_windows.update()
                    .where(
                        (t.monitor_windows.c.model == self.model)
                        & (t.monitor_windows.c.window == w.key)
                    )
                    .values(metrics=json.dumps(w.metrics, default=_json_default))
                )

    def _log_by_window(self, stored: list[Window]) -> pd.DataFrame:
        """Every logged row of the monitored roles, with the ``_window`` it belongs to."""
        seen = self._seen()
        paths = list(seen)
        cols = [*LOG_COLUMNS, *(["probability"] if self.reference.meta.task == "binary" else [])]
        log = predlog.read_files(self.root, paths, columns=cols)
        sizes = [int(seen[p]["rows"]) for p in paths]
        starts: list[int] = np.cumsum([0, *sizes[:-1]]).tolist() if sizes else []
        offsets = (
            np.concatenate([np.arange(n) + s for n, s in zip(sizes, starts, strict=True)])
            if sizes
            else np.empty(0, dtype=np.int64)
        )
        kind = window_kind(stored, self.settings.window)
        log["_window"] = windows.keys(log["ts"], kind, offsets)
        return log[log["role"].isin(self.settings.roles)]


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


__all__ = ["MIN_ROWS", "CalibrationFile", "Monitor", "Reference"]
