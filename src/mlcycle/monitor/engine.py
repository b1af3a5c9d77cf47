"""Incremental monitoring of a model's prediction log against its bundle's reference.

:meth:`Monitor.run` reads only log files it has not seen (plus earlier files
sharing a window with new rows), computes per window: data drift per feature
(mlcycle's calibrated decision or Evidently's rules), the drift share,
prediction drift, multivariate drift (domain-classifier AUC, PCA
reconstruction error), the outlier-model anomaly rate and contract-rule
anomalies, and the label-free performance estimate. Then, over every window,
it joins the labels ingested so far and computes realized metrics (per
window, sliding, cumulative, with intervals), target drift, the estimate's
error and the concept-drift signal; scores each metric series with a robust
z; evaluates the alert rules and delivers alerts.

Example:
    >>> mon = Monitor(store, Reference.from_bundle(folder, version=1), settings, root, base)
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

from mlcycle.artifacts import BundleMeta
from mlcycle.errors import BadInput
from mlcycle.monitor import anomaly, predlog, windows
from mlcycle.monitor.alerts import (
    Window,
    default_rules,
    deliver,
    evaluate_rules,
    sink_names,
    store_alerts,
)
from mlcycle.monitor.calibrate import NullModel
from mlcycle.monitor.drift import drift_report
from mlcycle.monitor.multivariate import PCAReconstruction, domain_auc
from mlcycle.monitor.performance import cbpe
from mlcycle.monitor.realized import PRIMARY, update_performance
from mlcycle.schema import Schema
from mlcycle.spec import Monitor as MonitorSettings
from mlcycle.store import Store, now
from mlcycle.store import tables as t

#: Windows with fewer rows get no distribution checks and raise no alerts.
MIN_ROWS = 30


@dataclass
class Reference:
    """What a model is monitored against: its bundle's contract, reference rows and models."""

    meta: BundleMeta
    schema: Schema
    frame: pd.DataFrame
    version: int | None = None
    predictions: pd.DataFrame | None = None
    outliers: anomaly.OutlierModel | None = None

    @classmethod
    def from_bundle(
        cls, folder: Path, version: int | None = None, predictions: pd.DataFrame | None = None
    ) -> Reference:
        """Load ``meta.json``, ``schema.json``, ``reference.parquet`` and ``outliers.joblib``."""
        meta = BundleMeta.model_validate_json((folder / "meta.json").read_text(encoding="utf-8"))
        schema = Schema.model_validate_json((folder / "schema.json").read_text(encoding="utf-8"))
        frame = pd.read_parquet(folder / "reference.parquet")
        missing = [f for f in meta.features if f not in frame.columns]
        if missing:
            raise BadInput(
                f"the reference of {meta.name} lacks feature(s) {', '.join(missing)}",
                "monitoring compares each feature with its training values",
                "re-register the model so its bundle holds a complete reference.parquet",
            )
        return cls(meta, schema, frame, version, predictions, anomaly.OutlierModel.load(folder))

    @property
    def positive(self) -> str | None:
        return None if self.meta.positive_label is None else str(self.meta.positive_label)


@dataclass
class Monitor:
    """Monitoring state of one model: the store, its reference and the spec's settings."""

    store: Store
    reference: Reference
    settings: MonitorSettings
    root: str
    base_dir: Path
    primary: str | None = None
    progress: Callable[[str], None] | None = None
    _nulls: dict[tuple[str, str, int], NullModel] = field(default_factory=dict)
    _pca: Any = None
    _encoded: np.ndarray | None = None

    @property
    def model(self) -> str:
        return self.reference.meta.name

    @property
    def features(self) -> list[str]:
        return list(self.reference.meta.features)

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress(text)

    # --- the run ------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Read new log files, update the windows they touch, then performance and alerts."""
        files = predlog.list_files(self.root, self.model)
        seen = self._seen()
        new = [f for f in files if f not in seen]
        touched: list[str] = []
        if new:
            self._say(f"reading {len(new)} new log file(s)")
            frames = [self._read_checked(p) for p in new]
            touched = self._update_windows(new, frames, seen)
        self._say("joining labels")
        update_performance(self)
        self._say("alerts")
        rules = self.settings.alerts or default_rules(
            self.settings, self.features, self.primary or PRIMARY[self.reference.meta.task]
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
        for name in self.features:
            try:
                kind = self.reference.schema.column(name).kind
            except KeyError:
                continue
            col = frame[name]
            if kind == "numeric" and not (pd.api.types.is_numeric_dtype(col) or col.isna().all()):
                raise BadInput(
                    f"column '{name}' in {path} was retyped: {col.dtype}, "
                    "the contract says numeric",
                    "drift and anomaly checks compare values of the kind the model was trained on",
                    f"write '{name}' as numbers, or move the file out of the log folder",
                )
        return frame

    def _offsets(self, paths: list[str], sizes: list[int], start: int) -> list[int]:
        out, pos = [], start
        for n in sizes:
            out.append(pos)
            pos += n
        return out

    def _update_windows(
        self, new: list[str], frames: list[pd.DataFrame], seen: dict[str, dict[str, Any]]
    ) -> list[str]:
        window = self.settings.window
        per_rows = windows.rows_per_window(window)
        start = sum(int(s["rows"]) for s in seen.values())
        offsets = self._offsets(new, [len(f) for f in frames], start)
        parts = []
        for frame, off in zip(frames, offsets, strict=True):
            frame = frame.copy()
            frame["_offset"] = off + np.arange(len(frame))
            parts.append(frame)
        fresh = pd.concat(parts, ignore_index=True)
        fresh["_window"] = windows.keys(fresh["ts"], window, fresh["_offset"].to_numpy())
        affected = sorted(set(fresh.loc[fresh["role"].isin(self.settings.roles), "_window"]))
        # Earlier files that share a window with the new rows are read again: a window is
        # always computed from all of its rows.
        old_paths: list[str] = []
        old_start = 0
        for path, info in seen.items():
            lo, hi = pd.Timestamp(info["ts_min"]), pd.Timestamp(info["ts_max"])
            for key in affected:
                b = windows.bounds(key, window)
                if b is not None:
                    hit = lo < b[1] and hi >= b[0]
                else:
                    assert per_rows is not None
                    first = int(key.split("-")[1]) * per_rows
                    hit = old_start < first + per_rows and old_start + int(info["rows"]) > first
                if hit:
                    old_paths.append(path)
                    break
            old_start += int(info["rows"])
        if old_paths:
            starts = {}
            pos = 0
            for path, info in seen.items():
                starts[path] = pos
                pos += int(info["rows"])
            old = []
            for path in old_paths:
                f = self._read_checked(path)
                f["_offset"] = starts[path] + np.arange(len(f))
                old.append(f)
            both = pd.concat([*old, fresh.drop(columns="_window")], ignore_index=True)
            both["_window"] = windows.keys(both["ts"], window, both["_offset"].to_numpy())
        else:
            both = fresh
        both = both[both["role"].isin(self.settings.roles)]
        for i, key in enumerate(affected):
            self._say(f"window {key} ({i + 1}/{len(affected)})")
            rows = both[both["_window"] == key]
            metrics = self.window_metrics(rows)
            if per_rows is not None:
                metrics["partial"] = len(rows) < per_rows
            self._save_window(key, rows, metrics)
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
        return affected

    # --- one window ---------------------------------------------------------------

    def window_metrics(self, rows: pd.DataFrame) -> dict[str, Any]:
        """Everything computed from a window's rows alone (no labels)."""
        ref = self.reference
        m: dict[str, Any] = {"rows": len(rows), "window_kind": self.settings.window}
        versions = rows["model_version"].dropna()
        m["model_versions"] = sorted({int(v) for v in versions})
        if len(rows) < MIN_ROWS:
            # Too few rows to say anything about distributions; kept, but never alerting.
            m["too_small"] = True
            return m
        report = drift_report(
            ref.frame,
            rows,
            self.features,
            schema=ref.schema,
            test=self.settings.drift_test,
            fdr=self.settings.fdr,
            null_models=self._nulls,
        )
        m["drift_report"] = report.model_dump(mode="json")["features"]
        for f in report.features:
            m[f"drift:{f.feature}"] = 1.0 if f.drift else 0.0
            m[f"drift_stat:{f.feature}"] = f.statistic
        m["drift_share"] = len(report.drifted) / max(len(report.features), 1)
        self._prediction_drift(rows, m)
        if ref.outliers is not None:
            m["anomaly_rate"] = ref.outliers.rate(rows)
            m["band:anomaly_rate"] = list(anomaly.anomaly_band(len(rows)))
        rules = anomaly.rule_anomalies(rows, ref.schema, self.features)
        m["rule_anomalies"] = rules
        m["rule_anomaly_rate"] = rules.get("rows", 0) / len(rows)
        self._multivariate(rows, m)
        if "probability" in rows.columns and ref.meta.task == "binary":
            est = cbpe(rows["probability"].to_numpy(dtype=np.float64, na_value=np.nan))
            for k, v in est.items():
                m[f"estimated:{k}"] = v
        return m

    def _prediction_drift(self, rows: pd.DataFrame, m: dict[str, Any]) -> None:
        preds = self.reference.predictions
        column = "probability" if self.reference.meta.task == "binary" else "prediction"
        if preds is None or column not in preds.columns or column not in rows.columns:
            return
        cur = rows[[column]]
        if self.reference.meta.task != "regression" and column == "prediction":
            cur = cur.astype(str)
            ref = preds[[column]].astype(str)
        else:
            ref = preds[[column]]
        report = drift_report(ref, cur, [column], test="auto", null_models=self._nulls)
        f = report.features[0]
        m["prediction_drift"] = 1.0 if f.drift else 0.0
        m["prediction_drift_stat"] = f.statistic
        m["prediction_drift_threshold"] = f.threshold

    def _encode(self, frame: pd.DataFrame) -> np.ndarray:
        cats = self._cats
        return anomaly.encode(frame, self.features, cats)

    @property
    def _cats(self) -> dict[str, list[str]]:
        if not hasattr(self, "_cats_cache"):
            self._cats_cache = anomaly.categories_of(
                self.reference.frame, self.features, self.reference.schema
            )
        return self._cats_cache

    def _multivariate(self, rows: pd.DataFrame, m: dict[str, Any]) -> None:
        if self._encoded is None:
            sample = self.reference.frame
            if len(sample) > 20_000:
                sample = sample.sample(20_000, random_state=0)
            self._encoded = self._encode(sample)
            numeric = [i for i, f in enumerate(self.features) if f not in self._cats]
            self._numeric_idx = numeric
            self._pca = PCAReconstruction.fit(self._encoded[:, numeric]) if numeric else None
        cur = self._encode(rows)
        auc = domain_auc(self._encoded, cur)
        if auc is not None:
            m["domain_auc"] = auc
        if self._pca is not None:
            ratio = self._pca.ratio(cur[:, self._numeric_idx])
            if ratio is not None:
                m["pca_error_ratio"] = ratio

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

    def _update_metrics(self, key: str, metrics: dict[str, Any]) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(
                t.monitor_windows.update()
                .where(
                    (t.monitor_windows.c.model == self.model) & (t.monitor_windows.c.window == key)
                )
                .values(metrics=json.dumps(metrics, default=_json_default))
            )


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
