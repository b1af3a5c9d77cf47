"""Monitoring with profiles and seasonal columns, on a real store and prediction log.

* Each window's profile is stored with the window; merged, the windows' profiles
  equal the profile of their rows concatenated (counts, nulls, min, max exactly;
  mean and m2 to rounding).
* "Did training see this value" is answered by the bundle's profile (every
  training row), not by the reference sample.
* A column marked seasonal that moves past its training range raises no alert,
  no anomaly and no domain drift; unmarked, the same column alerts as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.artifacts import BundleMeta
from mlcycle.errors import BadInput
from mlcycle.monitor.anomaly import fit_outlier_model
from mlcycle.monitor.engine import Monitor, Reference
from mlcycle.monitor.profiled import rollup, training_values, value_checks
from mlcycle.monitor.report import render
from mlcycle.predlog import write_predictions
from mlcycle.profiles import compute_profile
from mlcycle.schema import ColumnSchema, Schema
from mlcycle.spec import Monitor as MonitorSettings
from mlcycle.store import Store

FEATURES = ["x", "month", "colour"]
SCHEMA = Schema(
    columns=[
        ColumnSchema(name="x", kind="numeric"),
        ColumnSchema(name="month", kind="numeric", min=1.0, max=5.0),
        ColumnSchema(name="colour", kind="categorical", categories=["red", "green", "blue"]),
        ColumnSchema(name="target", kind="boolean", role="target"),
    ]
)


def rows(n: int, seed: int, months: tuple[int, int] = (1, 5)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    x[rng.uniform(size=n) < 0.05] = np.nan  # some nulls, so null counts are checked too
    p = 1 / (1 + np.exp(-2 * np.nan_to_num(x)))
    return pd.DataFrame(
        {
            "x": x,
            "month": rng.integers(months[0], months[1] + 1, n).astype(np.float64),
            "colour": rng.choice(["red", "green", "blue"], n),
            "probability": p,
            "target": rng.uniform(size=n) < p,
        }
    )


def make_bundle(tmp_path: Path, training: pd.DataFrame, sample: pd.DataFrame) -> Path:
    """A bundle whose profile describes ``training`` and whose reference sample is ``sample``."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    meta = BundleMeta(
        name="toy",
        task="binary",
        target="target",
        positive_label=True,
        classes=[False, True],
        features=FEATURES,
        id_column="id",
        metrics={"roc_auc": 0.75},
        dataset_id="d",
        model_artifact_id="m",
        spec_hash="s",
        mlcycle_version="0",
        created_at="2026-01-01",
    )
    (folder / "meta.json").write_text(meta.model_dump_json())
    (folder / "schema.json").write_text(SCHEMA.model_dump_json())
    (folder / "profile.json").write_text(compute_profile(training, SCHEMA).model_dump_json())
    sample[[*FEATURES, "target"]].to_parquet(folder / "reference.parquet", index=False)
    sample[["probability"]].to_parquet(folder / "ref_preds.parquet", index=False)
    fit_outlier_model(folder)
    return folder


def log_day(root: str, day: str, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    n = len(frame)
    frame["ts"] = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(np.arange(n), unit="s")
    frame["request_id"] = [f"{day}-{i}" for i in range(n)]
    frame["row_id"] = frame["request_id"]
    frame["model"] = "toy"
    frame["model_version"] = 1
    frame["role"] = "batch"
    frame["prediction"] = np.where(frame["probability"] >= 0.5, "True", "False")
    write_predictions(root, "toy", frame.drop(columns="target"))
    return frame


def monitor(
    store: Store, bundle: Path, tmp_path: Path, seasonal: list[str], window: str = "day"
) -> Monitor:
    settings = MonitorSettings(window=window, persistence=2, min_labels=50)
    preds = pd.read_parquet(bundle / "ref_preds.parquet")
    reference = Reference.from_bundle(bundle, version=1, predictions=preds)
    return Monitor(
        store,
        reference,
        settings,
        str(tmp_path / "log"),
        tmp_path,
        primary="roc_auc",
        seasonal=seasonal,
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    sample = rows(4000, 0)
    return make_bundle(tmp_path, sample, sample)


def test_window_profiles_merge_to_the_profile_of_the_concatenated_windows(
    store: Store, bundle: Path, tmp_path: Path
) -> None:
    mon = monitor(store, bundle, tmp_path, seasonal=[])
    days = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-04-01"]
    logged = [log_day(mon.root, day, rows(300 + 50 * i, 10 + i)) for i, day in enumerate(days)]
    mon.run()
    stored = mon.windows()
    assert [w.key for w in stored] == days
    assert all("profile" in w.metrics for w in stored)

    whole = compute_profile(pd.concat(logged, ignore_index=True), SCHEMA)
    (merged,) = rollup(stored, "all")
    assert merged.windows == days and merged.profile.rows == whole.rows
    for name in FEATURES:
        got, want = merged.profile.column(name), whole.column(name)
        assert (got.count, got.nulls, got.min, got.max) == (
            want.count,
            want.nulls,
            want.min,
            want.max,
        )
        if want.mean is not None:
            assert got.mean == pytest.approx(want.mean, rel=1e-12, abs=1e-12)
            assert got.m2 == pytest.approx(want.m2, rel=1e-12)
    assert merged.profile.column("colour").top == whole.column("colour").top

    # By month: March's three daily windows merge, April's one stands alone.
    months = rollup(stored, "month")
    assert [(r.key, r.windows) for r in months] == [("2026-03", days[:3]), ("2026-04", days[3:])]
    march = compute_profile(pd.concat(logged[:3], ignore_index=True), SCHEMA)
    assert months[0].profile.column("x").count == march.column("x").count
    assert months[0].profile.column("x").nulls == march.column("x").nulls
    # The report shows the latest window's profile figures.
    html = render(mon)
    assert "<h2>Window profile</h2>" in html and "Window <b>2026-04-01</b>; training ranges" in html


def test_rollup_refuses_groupings_that_do_not_nest() -> None:
    from mlcycle.monitor.alerts import Window

    weeks = [Window("2026-W27", 1, {}), Window("2026-W28", 1, {})]
    with pytest.raises(BadInput, match="cannot be rolled up by month"):
        rollup(weeks, "month")
    with pytest.raises(BadInput, match="unknown roll-up 'year'"):
        rollup(weeks, "year")
    # Windows stored before profiles were kept are named, not merged.
    assert rollup(weeks, "all") == []


def test_training_values_come_from_the_profile_not_the_sample(tmp_path: Path) -> None:
    # Training held a rare colour and an extreme x that the reference sample missed.
    training = rows(4000, 0)
    training.loc[0, "colour"] = "violet"
    training.loc[1, "x"] = 50.0
    sample = training.iloc[2:].reset_index(drop=True)
    folder = make_bundle(tmp_path, training, sample)
    ref = Reference.from_bundle(folder)
    assert ref.profile is not None
    known = training_values(ref.profile, ref.schema, ref.frame, FEATURES)
    assert known.complete["colour"] is True and "violet" in known.categories["colour"]
    assert known.ranges["x"][1] == 50.0

    window = rows(100, 3)
    window.loc[0, "colour"] = "violet"  # training saw it: not unseen
    window.loc[1, "x"] = 40.0  # inside training's range: not out of range
    window.loc[2, "colour"] = "black"  # never seen
    window.loc[3, "x"] = 60.0  # beyond training
    checks = value_checks(window, known, FEATURES)
    assert checks["unseen:colour"] == 1 and checks["out_of_range:x"] == 1
    assert checks["rows_unseen"] == 1 and checks["rows_out_of_range"] == 1

    # The sample alone would have called both training values new.
    from_sample = training_values(None, Schema(columns=[]), ref.frame, FEATURES)
    sample_checks = value_checks(window, from_sample, FEATURES)
    assert sample_checks["unseen:colour"] == 2
    # 40.0 lies beyond the sample's range (so do any window values past its extremes).
    assert sample_checks["out_of_range:x"] >= 2


def seasonal_run(
    store: Store, bundle: Path, tmp_path: Path, seasonal: list[str]
) -> tuple[Monitor, list[dict[str, Any]]]:
    mon = monitor(store, bundle, tmp_path, seasonal)
    # July and August: month moves past the training months; nothing else changes.
    for i, day in enumerate(["2026-07-01", "2026-07-02", "2026-07-03"]):
        log_day(mon.root, day, rows(600, 20 + i, months=(7, 12)))
    mon.run()
    return mon, [w.metrics for w in mon.windows()]


def test_a_seasonal_column_past_its_training_range_raises_nothing(
    store: Store, bundle: Path, tmp_path: Path
) -> None:
    from mlcycle.monitor.alerts import list_alerts

    mon, metrics = seasonal_run(store, bundle, tmp_path, seasonal=["month"])
    for m in metrics:
        # Reported, marked, not counted.
        assert m["drift:month"] == 1.0
        assert m["seasonal"] == ["month"]
        entry = next(f for f in m["drift_report"] if f["feature"] == "month")
        assert entry["seasonal"] is True
        assert m["drift_share"] == 0.0
        # No anomaly: the outlier model holds month at its median, the rules skip its range.
        assert m["anomaly_rate"] <= m["band:anomaly_rate"][1]
        assert m["rule_anomaly_rate"] == 0.0
        assert m["out_of_range_share"] == 0.0
        assert m["value_checks"]["out_of_range:month"] == 600  # still shown per feature
        # Multivariate drift without month: reference-like.
        assert m["domain_auc"] < 0.6
    assert [a["rule"] for a in list_alerts(store, mon.model)] == []
    html = render(mon)
    assert "seasonal — expected, not alerted" in html
    assert "<h2>Window profile</h2>" in html and "month (seasonal)" in html


def test_the_same_column_unmarked_alerts_as_before(
    store: Store, bundle: Path, tmp_path: Path
) -> None:
    from mlcycle.monitor.alerts import list_alerts

    mon, metrics = seasonal_run(store, bundle, tmp_path, seasonal=[])
    for m in metrics:
        assert m["drift:month"] == 1.0 and "seasonal" not in m
        assert m["drift_share"] == pytest.approx(1 / 3)
        assert m["anomaly_rate"] > 0.9
        assert m["rule_anomaly_rate"] == 1.0
        assert m["out_of_range_share"] == 1.0
        assert m["domain_auc"] > 0.95
    rules = {a["rule"] for a in list_alerts(store, mon.model)}
    assert {"data_drift:month", "anomaly_rate"} <= rules
