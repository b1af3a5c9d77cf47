"""The label side of monitoring: realized metrics per window, sliding and cumulative,
target drift, the recalibrated label-free estimate and its error, concept drift, and
the robust z of each metric series. Run by :meth:`Monitor.run` after the windows.

Example:
    >>> update_performance(monitor)   # after `mlcycle monitor labels`
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlcycle import predlog
from mlcycle.monitor import anomaly, windows
from mlcycle.monitor.drift import drift_report
from mlcycle.monitor.performance import cbpe, realized_metrics
from mlcycle.spec import LOWER_IS_BETTER

if TYPE_CHECKING:
    from mlcycle.monitor.engine import Monitor

#: Metric series scored with a robust z (``z:<metric>`` in each window).
SERIES = ("drift_share", "anomaly_rate", "prediction_drift_stat", "domain_auc", "rows")
PRIMARY = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}


def update_performance(mon: Monitor) -> None:
    from mlcycle.monitor.labels import read_labels

    labels = read_labels(mon.store, mon.model)
    if labels.empty:
        return
    seen = mon._seen()
    paths = list(seen)
    ref = mon.reference
    cols = ["row_id", "ts", "role", "prediction"]
    if ref.meta.task == "binary":
        cols.append("probability")
    log = predlog.read_files(mon.root, paths, columns=cols)
    sizes = [int(seen[p]["rows"]) for p in paths]
    starts: list[int] = np.cumsum([0, *sizes[:-1]]).tolist() if sizes else []
    offsets = (
        np.concatenate([np.arange(n) + s for n, s in zip(sizes, starts, strict=True)])
        if sizes
        else np.empty(0, dtype=np.int64)
    )
    all_windows = mon.windows()
    log["_window"] = windows.keys(log["ts"], _window_kind(mon, all_windows), offsets)
    log = log[log["role"].isin(mon.settings.roles)]
    known = labels.set_index("row_id")["label"]
    ids = log["row_id"].astype("object")
    log["label"] = ids.where(ids.isna(), ids.astype(str)).map(known)
    joined = log[log["label"].notna()]
    primary = mon.primary or PRIMARY[ref.meta.task]
    order = [w.key for w in all_windows]
    by_key = {k: g for k, g in joined.groupby("_window")}
    holdout = ref.meta.metrics.get(primary)
    for i, w in enumerate(all_windows):
        m = w.metrics
        group = by_key.get(w.key)
        m["labels"] = 0 if group is None else len(group)
        if group is not None:
            _realized(mon, group, m, "realized", primary, holdout)
            _target_drift(mon, group, m)
        pooled = [
            by_key[k] for k in order[max(0, i - mon.settings.sliding + 1) : i + 1] if k in by_key
        ]
        if pooled:
            _realized(mon, pd.concat(pooled), m, "sliding", primary, None)
        upto = [by_key[k] for k in order[: i + 1] if k in by_key]
        if upto:
            _realized(mon, pd.concat(upto), m, "cumulative", primary, None)
        _calibrated_estimate(mon, log, joined, order[:i], w.key, m)
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
        for name in SERIES:
            z = anomaly.robust_z([x.metrics.get(name) for x in all_windows[: i + 1]])
            if z is not None:
                m[f"z:{name}"] = z
        mon._update_metrics(w.key, m)


def _window_kind(mon: Monitor, stored: list[Any]) -> str:
    """The window kind the stored windows were cut with (a replay may have used another
    than the spec's, and labels must land in the windows that exist)."""
    kinds = Counter(str(w.metrics.get("window_kind", mon.settings.window)) for w in stored)
    return kinds.most_common(1)[0][0] if kinds else mon.settings.window


def _calibrated_estimate(
    mon: Monitor,
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
    if (
        mon.reference.meta.task != "binary"
        or "probability" not in log.columns
        or m.get("too_small")
    ):
        return
    past = joined[joined["_window"].isin(earlier)]
    if len(past) < mon.settings.min_labels or mon.reference.positive is None:
        return
    from sklearn.isotonic import IsotonicRegression

    y = (past["label"].astype(str) == mon.reference.positive).to_numpy(dtype=np.float64)
    x = past["probability"].to_numpy(dtype=np.float64, na_value=np.nan)
    keep = ~np.isnan(x)
    if keep.sum() < mon.settings.min_labels or len(np.unique(y[keep])) < 2:
        return
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x[keep], y[keep])
    cur = log.loc[log["_window"] == key, "probability"].to_numpy(dtype=np.float64, na_value=np.nan)
    cur = cur[~np.isnan(cur)]
    if cur.size == 0:
        return
    for k, v in cbpe(iso.predict(cur)).items():
        m[f"estimated:{k}"] = v
    m["estimated:calibrated_on"] = int(keep.sum())


def _realized(
    mon: Monitor,
    group: pd.DataFrame,
    m: dict[str, Any],
    prefix: str,
    primary: str,
    holdout: float | None,
) -> None:
    ref = mon.reference
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
        task, labels, preds, prob, positive=ref.positive, min_labels=mon.settings.min_labels
    )
    m[f"{prefix}:n"] = res["n"]
    for k, v in res.items():
        if k != "n":
            m[f"{prefix}:{k}"] = v
    ci = res.get(f"{primary}_ci")
    if prefix == "realized" and holdout is not None and ci is not None:
        half = (ci[1] - ci[0]) / 2
        if primary in LOWER_IS_BETTER:
            m[f"band:realized:{primary}"] = [None, holdout + half]
        else:
            m[f"band:realized:{primary}"] = [holdout - half, None]


def _target_drift(mon: Monitor, group: pd.DataFrame, m: dict[str, Any]) -> None:
    ref = mon.reference
    target = ref.meta.target
    if target not in ref.frame.columns or len(group) < mon.settings.min_labels:
        return
    if ref.meta.task == "regression":
        r = pd.DataFrame({"target": pd.to_numeric(ref.frame[target], errors="coerce")})
        c = pd.DataFrame({"target": pd.to_numeric(group["label"], errors="coerce")})
    else:
        r = pd.DataFrame({"target": ref.frame[target].astype(str)})
        c = pd.DataFrame({"target": group["label"].astype(str)})
    f = drift_report(r, c, ["target"], null_models=mon._nulls).features[0]
    m["target_drift"] = 1.0 if f.drift else 0.0
    m["target_drift_stat"] = f.statistic
