"""What one window measures from its rows alone: drift per feature, the drift share,
prediction drift, multivariate drift, anomalies and the label-free estimate.

A mixin of :class:`~mlcycle.monitor.engine.Monitor` (which holds the reference,
the settings and the caches these use); the incremental bookkeeping of the log
stays in the engine.

Example:
    >>> mon.window_metrics(rows)["drift_share"]
    0.25
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcycle.monitor import anomaly
from mlcycle.monitor.drift import drift_report
from mlcycle.monitor.multivariate import PCAReconstruction, domain_auc
from mlcycle.monitor.performance import cbpe
from mlcycle.monitor.reference import NullCache, Reference
from mlcycle.spec import Monitor as MonitorSettings

#: Windows with fewer rows get no distribution checks and raise no alerts.
MIN_ROWS = 30


class WindowMetrics:
    """The per-window measurements; needs ``reference``, ``settings`` and the caches."""

    reference: Reference
    settings: MonitorSettings
    _nulls: NullCache
    _pca: Any
    _encoded: np.ndarray | None

    @property
    def features(self) -> list[str]:
        return list(self.reference.meta.features)

    def window_metrics(self, rows: pd.DataFrame) -> dict[str, Any]:
        """Everything computed from a window's rows alone (no labels)."""
        ref = self.reference
        m: dict[str, Any] = {
            "rows": len(rows),
            "window_kind": self.settings.window,
            "reference": ref.label,
        }
        versions: Any = rows["model_version"].dropna() if "model_version" in rows else []
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


__all__ = ["MIN_ROWS", "WindowMetrics"]
