"""What one window measures from its rows alone: drift per feature, the drift share,
prediction drift, multivariate drift, anomalies, the window's profile, the values
training never saw, and the label-free estimate.

Seasonal features (``data.features.seasonal`` in the spec) take values training
never saw by design (a model trained on January–May meets July). Their drift is
still computed and reported (``seasonal`` in the metrics, ``"seasonal": true`` in
the drift report) but kept out of ``drift_share`` and the p-value family; the
outlier model holds them at their median, the contract-rule and value checks
skip their ranges and categories, and the domain classifier and PCA leave them
out — otherwise every window after the training months would be 100% anomalous
with a domain AUC of 1.0, by the calendar alone.

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

from mlcycle.monitor import anomaly, profiled
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
    #: Features whose values move past the training range with the calendar.
    seasonal: list[str]

    @property
    def features(self) -> list[str]:
        return list(self.reference.meta.features)

    @property
    def seasonal_features(self) -> list[str]:
        """The model's features marked seasonal (names the model does not read are ignored)."""
        marked = set(self.seasonal)
        return [f for f in self.features if f in marked]

    @property
    def known(self) -> profiled.TrainingValues:
        """What the training data held per feature (ranges, categories), from the profile."""
        if getattr(self, "_known_cache", None) is None:
            ref = self.reference
            self._known_cache = profiled.training_values(
                ref.profile, ref.schema, ref.frame, self.features
            )
        assert self._known_cache is not None
        return self._known_cache

    @property
    def outliers(self) -> anomaly.OutlierModel | None:
        """The bundle's outlier model, seasonal features held (see ``OutlierModel.masking``)."""
        if getattr(self, "_outliers_cache", None) is None and self.reference.outliers is not None:
            self._outliers_cache = self.reference.outliers.masking(
                self.seasonal_features, self.reference.frame
            )
        return getattr(self, "_outliers_cache", None)

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
        if len(rows):
            # Even a tiny window is profiled: roll-ups then cover every row of the log.
            self._profile(rows, m)
        if len(rows) < MIN_ROWS:
            # Too few rows to say anything about distributions; kept, but never alerting.
            m["too_small"] = True
            return m
        self._data_drift(rows, m)
        self._prediction_drift(rows, m)
        seasonal = self.seasonal_features
        outliers = self.outliers
        if outliers is not None:
            m["anomaly_rate"] = outliers.rate(rows)
            m["band:anomaly_rate"] = list(anomaly.anomaly_band(len(rows)))
        rules = anomaly.rule_anomalies(rows, ref.schema, self.features, seasonal)
        m["rule_anomalies"] = rules
        m["rule_anomaly_rate"] = rules.get("rows", 0) / len(rows)
        self._multivariate(rows, m)
        if "probability" in rows.columns and ref.meta.task == "binary":
            est = cbpe(rows["probability"].to_numpy(dtype=np.float64, na_value=np.nan))
            for k, v in est.items():
                m[f"estimated:{k}"] = v
        return m

    def _data_drift(self, rows: pd.DataFrame, m: dict[str, Any]) -> None:
        """Drift per feature; seasonal ones marked and left out of ``drift_share``."""
        seasonal = self.seasonal_features
        report = drift_report(
            self.reference.frame,
            rows,
            self.features,
            schema=self.reference.schema,
            test=self.settings.drift_test,
            fdr=self.settings.fdr,
            null_models=self._nulls,
            seasonal=seasonal,
        )
        entries = report.model_dump(mode="json")["features"]
        for entry in entries:
            if entry["feature"] in seasonal:
                entry["seasonal"] = True
        m["drift_report"] = entries
        for f in report.features:
            m[f"drift:{f.feature}"] = 1.0 if f.drift else 0.0
            m[f"drift_stat:{f.feature}"] = f.statistic
        if seasonal:
            m["seasonal"] = seasonal
        counted = [f for f in report.features if f.feature not in seasonal]
        m["drift_share"] = sum(f.drift for f in counted) / max(len(counted), 1)

    def _profile(self, rows: pd.DataFrame, m: dict[str, Any]) -> None:
        """The window's profile (stored, so windows merge) and the values training never saw."""
        ref = self.reference
        m["profile"] = profiled.window_profile(rows, ref.schema, self.features).model_dump(
            mode="json"
        )
        checks = profiled.value_checks(rows, self.known, self.features, self.seasonal_features)
        m["value_checks"] = checks
        m["out_of_range_share"] = checks["rows_out_of_range"] / len(rows)
        m["unseen_share"] = checks["rows_unseen"] / len(rows)

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
        """Domain-classifier AUC and PCA error ratio over the features that are not seasonal."""
        if self._encoded is None:
            sample = self.reference.frame
            if len(sample) > 20_000:
                sample = sample.sample(20_000, random_state=0)
            self._encoded = self._encode(sample)
            seasonal = set(self.seasonal_features)
            used = [i for i, f in enumerate(self.features) if f not in seasonal]
            numeric = [i for i in used if self.features[i] not in self._cats]
            self._used_idx = used
            self._numeric_idx = numeric
            self._pca = PCAReconstruction.fit(self._encoded[:, numeric]) if numeric else None
        if not self._used_idx:
            return
        cur = self._encode(rows)
        auc = domain_auc(self._encoded[:, self._used_idx], cur[:, self._used_idx])
        if auc is not None:
            m["domain_auc"] = auc
        if self._pca is not None:
            ratio = self._pca.ratio(cur[:, self._numeric_idx])
            if ratio is not None:
                m["pca_error_ratio"] = ratio


__all__ = ["MIN_ROWS", "WindowMetrics"]
