"""Anomalies: per-row outlier scores, contract-rule breaks, and outlying metric values.

* :func:`fit_outlier_model` runs at registration: an IsolationForest on the
  bundle's reference features, saved as the bundle's outlier model
  (:attr:`mlcycle.bundle.Bundle.outliers_path`). Its
  threshold is the reference's 99th score percentile, so about 1% of training
  rows count as anomalous and a window's ``anomaly_rate`` has a known baseline.
  The range and unseen-category parts of a score use the training data's
  ranges and categories from the bundle's profile (:func:`widen_with_profile`),
  not only the reference sample's. At monitoring time
  :meth:`OutlierModel.masking` holds seasonal features at their median.
* :func:`rule_anomalies` counts rows that break the data contract
  (``schema.json``): a number outside the contract's range, a category it does
  not list, a null where it forbids one (seasonal features: nulls only). An
  inferred contract's ranges and categories are those of every row of the
  version it was frozen from.
* :func:`robust_z` scores the latest value of a metric series against the
  earlier windows (median and MAD), so a sudden jump in any metric shows.

Example:
    >>> fit_outlier_model(bundle_folder)          # writes Bundle(bundle_folder).outliers_path
    >>> model = OutlierModel.load(bundle_folder)
    >>> model.rate(window_df)
    0.013
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import Profile
from mlcycle.bundle import Bundle
from mlcycle.schema import Schema

#: Share of reference rows above the outlier threshold.
CONTAMINATION = 0.01
#: Rows of the reference used to fit the outlier model.
FIT_ROWS = 20_000


def encode(
    frame: pd.DataFrame, features: Sequence[str], categories: dict[str, list[str]]
) -> np.ndarray:
    """Features as a float matrix: numbers as is (NaN kept), categories as codes (-1 unseen)."""
    cols = []
    for name in features:
        values = frame[name]
        if name in categories:
            index = pd.Index(categories[name])
            codes = index.get_indexer(
                pd.Index(values.astype("object").where(values.notna(), None).astype(str))
            )
            codes = np.where(values.isna().to_numpy(), -2, codes)
            cols.append(codes.astype(np.float64))
        else:
            cols.append(
                pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            )
    return np.column_stack(cols) if cols else np.empty((len(frame), 0))


def categories_of(
    reference: pd.DataFrame, features: Sequence[str], schema: Schema | None
) -> dict[str, list[str]]:
    """The reference categories of every non-numeric feature (as strings)."""
    out: dict[str, list[str]] = {}
    for name in features:
        kind = None
        if schema is not None:
            try:
                kind = schema.column(name).kind
            except KeyError:
                kind = None
        numeric = (
            kind == "numeric"
            if kind
            else pd.api.types.is_numeric_dtype(reference[name])
            and not pd.api.types.is_bool_dtype(reference[name])
        )
        if not numeric:
            out[name] = sorted(reference[name].dropna().astype(str).unique().tolist())
    return out


def widen_with_profile(
    categories: dict[str, list[str]],
    lows: np.ndarray,
    highs: np.ndarray,
    features: Sequence[str],
    profile: Profile | None,
) -> tuple[dict[str, list[str]], np.ndarray, np.ndarray]:
    """Categories and numeric ranges of the sample, widened to what the profile saw.

    ``lows``/``highs`` hold one bound per feature of ``features`` (in order). The
    profile summarises every row of the dataset version the model was trained
    from; the reference sample (and the outlier model's fit rows, a sample of
    it) misses rare values and the extremes. A value training saw is no anomaly,
    so each numeric feature's range takes the profile's ``min``/``max`` and each
    categorical feature adds the
    profile's ``top`` values. ``top`` keeps only the most frequent values, so a
    high-cardinality column's set stays the union with the sample's; widening
    only ever adds, so a profile that disagrees cannot make a seen value unseen.
    ``profile=None`` (a bundle without ``profile.json``) keeps the sample's.

    Example:
        >>> cats, lo, hi = widen_with_profile({"c": ["a"]}, lo, hi, ["x", "c"], profile)
        >>> cats["c"]
        ['a', 'rare']
    """
    if profile is None:
        return categories, lows, highs
    cats = dict(categories)
    lows, highs = lows.astype(np.float64), highs.astype(np.float64)
    for j, name in enumerate(features):
        try:
            col = profile.column(name)
        except KeyError:
            continue
        if name in cats:
            cats[name] = sorted({*cats[name], *col.top})
            continue
        if col.min is not None and math.isfinite(col.min):
            lows[j] = min(lows[j], col.min)
        if col.max is not None and math.isfinite(col.max):
            highs[j] = max(highs[j], col.max)
    return cats, lows, highs


@dataclass
class OutlierModel:
    """An IsolationForest over encoded features with its reference threshold."""

    features: list[str]
    categories: dict[str, list[str]]
    medians: np.ndarray
    forest: Any
    threshold: float

    lows: np.ndarray | None = None
    highs: np.ndarray | None = None
    spreads: np.ndarray | None = None
    #: Features held at their reference median when scoring (seasonal columns, see
    #: :meth:`masking`): no range or unseen-category penalty, no say in the forest.
    masked: list[str] = field(default_factory=list)

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Anomaly score per row (higher = more unusual).

        The forest's score, plus how far the row lies outside the reference
        range (in reference standard deviations, the largest over the
        features) plus 1 per unseen category: an IsolationForest scores a
        point far beyond the training range like the most extreme training
        points, so on its own it would miss exactly the rows monitoring cares
        about most.
        """
        x = encode(frame, self.features, self.categories)
        x = np.where(np.isnan(x), self.medians, x)
        held = np.array([f in self.masked for f in self.features], dtype=bool)
        if held.any():
            # A held column reads as the typical training value: whatever it holds
            # (a month training never saw) moves neither the forest nor the penalties.
            x = np.where(held, self.medians, x)
        score = -np.asarray(self.forest.score_samples(x))
        if self.lows is not None and self.highs is not None and self.spreads is not None:
            below = np.maximum(self.lows - x, 0.0)
            above = np.maximum(x - self.highs, 0.0)
            score = score + ((below + above) / self.spreads).max(axis=1, initial=0.0)
        for j, name in enumerate(self.features):
            if name in self.categories:
                score = score + (x[:, j] == -1.0)
        return score

    def masking(self, columns: Sequence[str], reference: pd.DataFrame) -> OutlierModel:
        """This model with ``columns`` held at their median, re-thresholded on ``reference``.

        Seasonal columns (``data.features.seasonal``) take values training never
        saw by design: a July row of a model trained on January–May is no
        anomaly. Held at the median they add no range or unseen-category
        penalty and the forest scores the row on its other features. The
        threshold is recomputed as the 99th percentile of the reference rows
        scored the same way (at most 20,000 of them, seed 0), so a reference-like
        window still has a 1% rate. Columns the model does not read are ignored;
        with none left the model is returned unchanged.

        Example:
            >>> OutlierModel.load(folder).masking(["month"], ref.frame).rate(july_rows)
            0.011
        """
        held = [c for c in dict.fromkeys(columns) if c in self.features]
        if not held:
            return self
        model = replace(self, masked=held)
        sample = (
            reference if len(reference) <= FIT_ROWS else reference.sample(FIT_ROWS, random_state=0)
        )
        if len(sample):
            model.threshold = float(np.quantile(model.scores(sample), 1.0 - CONTAMINATION))
        return model

    def rate(self, frame: pd.DataFrame) -> float:
        """Share of rows scoring above the reference threshold."""
        if len(frame) == 0:
            return 0.0
        return float(np.mean(self.scores(frame) > self.threshold))

    @classmethod
    def load(cls, folder: Path) -> OutlierModel | None:
        """The bundle's outlier model, or ``None`` when the bundle has none.

        Example:
            >>> OutlierModel.load(bundle_folder).rate(window_df)
            0.013
        """
        path = Bundle(folder).outliers_path
        if not path.is_file():
            return None
        import joblib

        data = joblib.load(path)
        return cls(**data)


def fit_outlier_model(folder: Path, *, seed: int = 0) -> Path | None:
    """Fit the outlier model on ``folder``'s reference and write it into the bundle.

    ``folder`` is a bundle being staged (its serving files and reference
    sample written, see :meth:`mlcycle.bundle.Bundle.write_serving`). The
    forest, the medians and the spreads come from the sample (they need rows);
    the range and unseen-category parts of the score use the training data's
    ranges and categories from the bundle's profile (:func:`widen_with_profile`). Returns
    the file written (:attr:`~mlcycle.bundle.Bundle.outliers_path`), or
    ``None`` when the reference has no rows.

    Example:
        >>> fit_outlier_model(staging_folder)
        PosixPath('.../outliers.joblib')
    """
    import joblib
    from sklearn.ensemble import IsolationForest

    bundle = Bundle(folder)
    meta, schema, reference = bundle.meta(), bundle.schema(), bundle.reference()
    features = [f for f in meta.features if f in reference.columns]
    if len(reference) == 0 or not features:
        return None
    if len(reference) > FIT_ROWS:
        reference = reference.sample(FIT_ROWS, random_state=seed)
    profile = bundle.profile() if bundle.profile_path.is_file() else None
    # Categories first: the forest learns the codes of the widened list, so a
    # category only the profile knows encodes as known (>= 0), not unseen (-1).
    categories = categories_of(reference, features, schema)
    categories = widen_with_profile(
        categories, np.zeros(len(features)), np.zeros(len(features)), features, profile
    )[0]
    x = encode(reference, features, categories)
    medians = np.nanmedian(np.where(np.isnan(x), np.nan, x), axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    x = np.where(np.isnan(x), medians, x)
    # 256 rows per tree (the paper's default), or every row of a smaller reference
    # (what scikit-learn would do anyway, minus its warning in `mlcycle run`).
    forest = IsolationForest(
        n_estimators=100, max_samples=min(256, len(x)), random_state=seed, n_jobs=1
    )
    forest.fit(x)
    numeric = np.array([f not in categories for f in features])
    lows = np.where(numeric, x.min(axis=0), -np.inf)
    highs = np.where(numeric, x.max(axis=0), np.inf)
    _, lows, highs = widen_with_profile(categories, lows, highs, features, profile)
    spreads = np.where(numeric & (x.std(axis=0) > 0), x.std(axis=0), 1.0)
    model = OutlierModel(features, categories, medians, forest, 0.0, lows, highs, spreads)
    threshold = float(np.quantile(model.scores(reference), 1.0 - CONTAMINATION))
    path = bundle.outliers_path
    data = {
        "features": features,
        "categories": categories,
        "medians": medians,
        "forest": forest,
        "threshold": threshold,
        "lows": lows,
        "highs": highs,
        "spreads": spreads,
    }
    joblib.dump(data, path, compress=3)
    return path


def anomaly_band(n: int) -> tuple[float, float]:
    """The anomaly rates a window of ``n`` reference-like rows stays within (99.9%)."""
    p = CONTAMINATION
    width = 3.29 * math.sqrt(p * (1 - p) / max(n, 1))
    return 0.0, p + width


def rule_anomalies(
    frame: pd.DataFrame,
    schema: Schema,
    features: Sequence[str],
    seasonal: Sequence[str] = (),
) -> dict[str, int]:
    """Rows breaking each contract rule: ``{"out_of_range:<col>": n, "unseen:<col>": n, ...}``.

    Only non-zero counts are returned; ``"rows"`` counts rows breaking any rule.
    ``seasonal`` columns get no range or category check (a month the contract's
    training rows did not hold is the calendar, not a broken row); a null where
    the contract forbids one still counts for them.

    Example:
        >>> rule_anomalies(df, schema, ["distance", "carrier"])
        {'unseen:carrier': 3, 'rows': 3}
    """
    counts: dict[str, int] = {}
    skip = set(seasonal)
    any_bad = np.zeros(len(frame), dtype=bool)
    for name in features:
        try:
            col = schema.column(name)
        except KeyError:
            continue
        values = frame[name]
        null = values.isna().to_numpy()
        if not col.nullable and null.any():
            counts[f"null:{name}"] = int(null.sum())
            any_bad |= null
        if name in skip:
            continue
        if col.kind == "numeric" and (col.min is not None or col.max is not None):
            num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            out = np.zeros(len(frame), dtype=bool)
            with np.errstate(invalid="ignore"):
                if col.min is not None:
                    out |= num < col.min
                if col.max is not None:
                    out |= num > col.max
            if out.any():
                counts[f"out_of_range:{name}"] = int(out.sum())
                any_bad |= out
        if col.categories is not None:
            known = pd.Index(col.categories)
            text = values.astype("object").where(~null, None).astype(str)
            unseen = (known.get_indexer(pd.Index(text)) < 0) & ~null
            if unseen.any():
                counts[f"unseen:{name}"] = int(unseen.sum())
                any_bad |= unseen
    if any_bad.any():
        counts["rows"] = int(any_bad.sum())
    return counts


def robust_z(series: Sequence[float | None], *, min_history: int = 4) -> float | None:
    """Robust z-score of the last value against the earlier ones: (x - median) / (1.4826·MAD).

    ``None`` when fewer than ``min_history`` earlier values exist. A MAD of 0
    (a flat history) is replaced by 10% of the median's size, so a flat series
    that moves is still noticed without dividing by zero.

    Example:
        >>> round(robust_z([0.10, 0.11, 0.09, 0.10, 0.35]), 1)
        33.7
    """
    values = [float(v) for v in series if v is not None and math.isfinite(float(v))]
    if len(values) < min_history + 1:
        return None
    history = np.array(values[:-1])
    med = float(np.median(history))
    mad = 1.4826 * float(np.median(np.abs(history - med)))
    if mad == 0.0:
        mad = max(abs(med) * 0.1, 1e-9)
    return (values[-1] - med) / mad
