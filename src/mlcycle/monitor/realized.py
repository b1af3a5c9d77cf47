"""The label side of monitoring: realized metrics per window, sliding and cumulative,
target drift, the recalibrated label-free estimate and its error, concept drift, and
the robust z of each metric series.

Pure computation over what the engine read: the windows (with their metrics),
the logged rows keyed by window, and the labels. :meth:`Monitor.run
<mlcycle.monitor.engine.Monitor.run>` reads those, calls
:func:`update_performance` after the windows, and stores the metrics back.

Example:
    >>> update_performance(windows, log, labels, reference, settings, primary="roc_auc",
    ...                    nulls={})   # after `mlcycle monitor labels`
    >>> windows[-1].metrics["realized:roc_auc"]
    0.71
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.monitor import anomaly
from mlcycle.monitor.alerts import Window
from mlcycle.monitor.drift import drift_report
from mlcycle.monitor.performance import cbpe, realized_metrics
from mlcycle.monitor.reference import NullCache, Reference
from mlcycle.spec import LOWER_IS_BETTER
from mlcycle.spec import Monitor as MonitorSettings

#: Metric series scored with a robust z (``z:<metric>`` in each window).
SERIES = ("drift_share", "anomaly_rate", "prediction_drift_stat", "domain_auc", "rows")
PRIMARY = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}
#: The log columns the label side reads.
LOG_COLUMNS = ("row_id", "ts", "role", "prediction")


def update_performance(
    all_windows: Sequence[Window],
    log: pd.DataFrame,
    labels: pd.DataFrame,
    reference: Reference,
    settings: MonitorSettings,
    *,
    primary: str,
    nulls: NullCache,
) -> None:
    """Add the label-side metrics to each window's ``metrics`` (in place).

    ``log`` holds the logged rows of the monitored roles with a ``_window``
    column naming the window each row belongs to; ``labels`` has ``row_id`` and
    ``label`` (both text); ``nulls`` is the drift-calibration cache, shared with
    the windows' own drift.

    Example:
        >>> update_performance(mon.windows(), log, read_labels(store, "flights"), ref,
        ...                    settings, primary="roc_auc", nulls={})
    """
    known = labels.set_index("row_id")["label"]
    ids = log["row_id"].astype("object")
    log = log.assign(label=ids.where(ids.isna(), ids.astype(str)).map(known))
    joined = log[log["label"].notna()]
    order = [w.key for w in all_windows]
    by_key = {k: g for k, g in joined.groupby("_window")}
    holdout = reference.meta.metrics.get(primary)
    scorer = _Scorer(reference, settings, primary, nulls)
    for i, w in enumerate(all_windows):
        m = w.metrics
        group = by_key.get(w.key)
        m["labels"] = 0 if group is None else len(group)
        if group is not None:
            scorer.realized(group, m, "realized", holdout)
            scorer.target_drift(group, m)
        pooled = [by_key[k] for k in order[max(0, i - settings.sliding + 1) : i + 1] if k in by_key]
        if pooled:
            scorer.realized(pd.concat(pooled), m, "sliding", None)
        upto = [by_key[k] for k in order[: i + 1] if k in by_key]
        if upto:
            scorer.realized(pd.concat(upto), m, "cumulative", None)
        scorer.calibrated_estimate(log, joined, order[:i], w.key, m)
        _derived(m, primary)
        for name in SERIES:
            z = anomaly.robust_z([x.metrics.get(name) for x in all_windows[: i + 1]])
            if z is not None:
                m[f"z:{name}"] = z


def _derived(m: dict[str, Any], primary: str) -> None:
    """The estimate's error, and concept drift: realized worse than its band with no drift."""
    realized = m.get(f"realized:{primary}")
    estimate = m.get(f"estimated:{primary}")
    if realized is not None and estimate is not None:
        m[f"estimate_error:{primary}"] = estimate - realized
    band = m.get(f"band:realized:{primary}")
    if realized is not None and band:
        worse = (band[0] is not None and realized < band[0]) or (
            band[1] is not None and realized > band[1]
        )
        quiet = m.get("drift_share", 0) == 0 and not m.get("prediction_drift")
        m["concept_drift"] = 1.0 if worse and quiet else 0.0


def window_kind(stored: Sequence[Window], default: str) -> str:
    """The window kind the stored windows were cut with (``default`` when none are).

    A replay may have used another kind than the spec's, and labels must land
    in the windows that exist.

    Example:
        >>> window_kind(mon.windows(), settings.window)
        'month'
    """
    kinds = Counter(str(w.metrics.get("window_kind", default)) for w in stored)
    return kinds.most_common(1)[0][0] if kinds else default


@dataclass
class _Scorer:
    """What every label-side metric of one run needs: the reference, settings and caches."""

    reference: Reference
    settings: MonitorSettings
    primary: str
    nulls: NullCache

    def calibrated_estimate(
        self,
        log: pd.DataFrame,
        joined: pd.DataFrame,
        earlier: list[str],
        key: str,
        m: dict[str, Any],
    ) -> None:
        """CBPE with probabilities recalibrated on the labels of earlier windows.

        The model's own probabilities are often overconfident (they were fitted on
        the training rows); an isotonic map learned from labelled production rows
        of *earlier* windows keeps the estimate label-free for this window.
        """
        ref, min_labels = self.reference, self.settings.min_labels
        if ref.meta.task != "binary" or "probability" not in log.columns or m.get("too_small"):
            return
        past = joined[joined["_window"].isin(earlier)]
        if len(past) < min_labels or ref.positive is None:
            return
        from sklearn.isotonic import IsotonicRegression

        y = (past["label"].astype(str) == ref.positive).to_numpy(dtype=np.float64)
        x = past["probability"].to_numpy(dtype=np.float64, na_value=np.nan)
        keep = ~np.isnan(x)
        if keep.sum() < min_labels or len(np.unique(y[keep])) < 2:
            return
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x[keep], y[keep])
        cur = log.loc[log["_window"] == key, "probability"].to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        cur = cur[~np.isnan(cur)]
        if cur.size == 0:
            return
        for k, v in cbpe(iso.predict(cur)).items():
            m[f"estimated:{k}"] = v
        m["estimated:calibrated_on"] = int(keep.sum())

    def realized(
        self, group: pd.DataFrame, m: dict[str, Any], prefix: str, holdout: float | None
    ) -> None:
        """Realized metrics of ``group`` as ``<prefix>:<metric>``; with ``holdout``, the band."""
        ref, primary = self.reference, self.primary
        task = ref.meta.task
        if task == "regression":
            labels = pd.to_numeric(group["label"], errors="coerce").to_numpy(dtype=np.float64)
            preds = pd.to_numeric(group["prediction"], errors="coerce").to_numpy(dtype=np.float64)
        else:
            labels = group["label"].astype(str).to_numpy()
            preds = group["prediction"].astype(str).to_numpy()
        prob = (
            group["probability"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "probability" in group.columns
            else None
        )
        res = realized_metrics(
            task, labels, preds, prob, positive=ref.positive, min_labels=self.settings.min_labels
        )
        m[f"{prefix}:n"] = res["n"]
        for k, v in res.items():
            if k != "n":
                m[f"{prefix}:{k}"] = v
        ci = res.get(f"{primary}_ci")
        if prefix == "realized" and holdout is not None and ci is not None:
            # The window's figure and the holdout's are both estimates: the band is the
            # holdout less the half-width of their difference's interval (independent
            # samples), not of the window's alone, which alerted on chance (July, flights).
            half = (ci[1] - ci[0]) / 2
            if ref.holdout_interval is not None:
                holdout_half = (ref.holdout_interval[1] - ref.holdout_interval[0]) / 2
                half = float(np.hypot(half, holdout_half))
            if primary in LOWER_IS_BETTER:
                m[f"band:realized:{primary}"] = [None, holdout + half]
            else:
                m[f"band:realized:{primary}"] = [holdout - half, None]

    def target_drift(self, group: pd.DataFrame, m: dict[str, Any]) -> None:
        """Drift of the labels against the reference's target values."""
        ref = self.reference
        target = ref.meta.target
        if target not in ref.frame.columns or len(group) < self.settings.min_labels:
            return
        if ref.meta.task == "regression":
            r = pd.DataFrame({"target": pd.to_numeric(ref.frame[target], errors="coerce")})
            c = pd.DataFrame({"target": pd.to_numeric(group["label"], errors="coerce")})
        else:
            r = pd.DataFrame({"target": ref.frame[target].astype(str)})
            c = pd.DataFrame({"target": group["label"].astype(str)})
        f = drift_report(r, c, ["target"], null_models=self.nulls).features[0]
        m["target_drift"] = 1.0 if f.drift else 0.0
        m["target_drift_stat"] = f.statistic
