"""Outlier model, contract-rule anomalies, robust z, multivariate drift, windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.artifacts import BundleMeta, ColumnProfile, Profile
from mlcycle.monitor import windows
from mlcycle.monitor.anomaly import (
    OutlierModel,
    anomaly_band,
    fit_outlier_model,
    robust_z,
    rule_anomalies,
)
from mlcycle.monitor.multivariate import PCAReconstruction, domain_auc
from mlcycle.schema import ColumnSchema, Schema

SCHEMA = Schema(
    columns=[
        ColumnSchema(name="x", kind="numeric", nullable=False, min=-5.0, max=5.0),
        ColumnSchema(name="y", kind="numeric"),
        ColumnSchema(name="colour", kind="categorical", categories=["red", "green"]),
        ColumnSchema(name="target", kind="boolean", role="target"),
    ]
)


def reference(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "x": x,
            "y": x * 2 + rng.normal(scale=0.1, size=n),
            "colour": rng.choice(["red", "green"], n),
            "target": rng.uniform(size=n) < 0.3,
        }
    )


def bundle(folder: Path) -> Path:
    meta = BundleMeta(
        name="toy",
        task="binary",
        target="target",
        positive_label=True,
        classes=[False, True],
        features=["x", "y", "colour"],
        dataset_id="d",
        model_artifact_id="m",
        spec_hash="s",
        mlcycle_version="0",
        created_at="2026-01-01",
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(meta.model_dump_json())
    (folder / "schema.json").write_text(SCHEMA.model_dump_json())
    reference().to_parquet(folder / "reference.parquet", index=False)
    return folder


def test_outlier_model_flags_unusual_rows(tmp_path: Path) -> None:
    folder = bundle(tmp_path / "b")
    assert fit_outlier_model(folder) == folder / "outliers.joblib"
    model = OutlierModel.load(folder)
    assert model is not None
    normal = reference(1000, seed=1)
    assert model.rate(normal) < anomaly_band(1000)[1]
    weird = normal.assign(x=normal["x"] * 8, colour="purple")
    assert model.rate(weird) > 0.3
    assert model.rate(normal.iloc[:0]) == 0.0
    assert OutlierModel.load(tmp_path) is None


def test_outlier_model_knows_training_values_the_sample_missed(tmp_path: Path) -> None:
    """A value seen in training (the profile) but not in the reference sample is no anomaly.

    The profile covers every training row; the ≤ 50k-row sample misses rare
    categories and the extremes. Without the profile, a window of such rows
    scores as unseen / out of range and the anomaly rate jumps.
    """
    folder = bundle(tmp_path / "b")
    profile = Profile(
        rows=1_000_000,
        columns=[
            ColumnProfile(name="x", kind="numeric", count=10**6, nulls=0, min=-6.0, max=6.0),
            ColumnProfile(name="y", kind="numeric", count=10**6, nulls=0, min=-13.0, max=13.0),
            ColumnProfile(
                name="colour",
                kind="categorical",
                count=10**6,
                nulls=0,
                top={"red": 500_000, "green": 499_990, "blue": 10},
            ),
        ],
    )
    (folder / "profile.json").write_text(profile.model_dump_json())
    fit_outlier_model(folder)
    model = OutlierModel.load(folder)
    assert model is not None
    assert "blue" in model.categories["colour"]
    # The range penalty starts at training's extremes, not the sample's (~±3.5);
    # the forest itself still rates the sample's extremes as rare, as it should.
    assert model.lows is not None and model.highs is not None
    assert list(model.lows[:2]) == [-6.0, -13.0]
    assert list(model.highs[:2]) == [6.0, 13.0]
    rows = reference(1000, seed=1)
    assert model.rate(rows.assign(colour="blue")) < anomaly_band(1000)[1]
    # What training never saw still is one.
    assert model.rate(rows.assign(colour="purple")) > 0.9
    assert model.rate(rows.assign(x=60.0, y=120.0)) > 0.9


def test_outlier_model_without_profile_keeps_the_sample(tmp_path: Path) -> None:
    folder = bundle(tmp_path / "b")
    fit_outlier_model(folder)
    model = OutlierModel.load(folder)
    assert model is not None
    assert model.categories["colour"] == ["green", "red"]
    assert model.rate(reference(1000, seed=1).assign(colour="blue")) > 0.9


def test_rule_anomalies_count_each_rule() -> None:
    frame = pd.DataFrame(
        {"x": [0.0, 9.0, None, 1.0], "y": [1.0, 2, 3, 4], "colour": ["red", "blue", "red", None]}
    )
    counts = rule_anomalies(frame, SCHEMA, ["x", "y", "colour"])
    assert counts == {"out_of_range:x": 1, "null:x": 1, "unseen:colour": 1, "rows": 2}
    assert rule_anomalies(frame.iloc[[0]], SCHEMA, ["x", "colour", "nope"]) == {}


def test_robust_z() -> None:
    assert robust_z([0.1, 0.11, 0.09, 0.1]) is None
    assert robust_z([0.10, 0.11, 0.09, 0.10, 0.35]) == pytest.approx(33.72, abs=0.01)
    assert abs(robust_z([0.10, 0.11, 0.09, 0.10, 0.105]) or 0) < 1
    assert robust_z([1.0, 1.0, 1.0, 1.0, 1.0]) == 0.0  # a flat series, MAD 0, no division by 0


def test_domain_classifier_and_pca_see_joint_drift() -> None:
    ref = reference(3000)[["x", "y"]].to_numpy()
    same = reference(3000, seed=5)[["x", "y"]].to_numpy()
    # Same marginals, broken correlation: no single column shows it.
    broken = same.copy()
    broken[:, 1] = np.random.default_rng(9).permutation(broken[:, 1])
    assert abs((domain_auc(ref, same) or 0) - 0.5) < 0.06
    assert (domain_auc(ref, broken) or 0) > 0.8
    assert domain_auc(ref[:10], same) is None
    pca = PCAReconstruction.fit(ref)
    assert pca is not None
    assert 0.7 < (pca.ratio(same) or 0) < 1.3
    assert (pca.ratio(broken) or 0) > 10


def test_window_keys_and_bounds() -> None:
    ts = pd.Series(
        pd.to_datetime(["2013-07-01 05:00", "2013-07-09 00:00", "2013-12-31 23:59"], utc=True)
    )
    assert windows.keys(ts, "day").tolist() == ["2013-07-01", "2013-07-09", "2013-12-31"]
    assert windows.keys(ts, "week").tolist() == ["2013-W27", "2013-W28", "2014-W01"]
    assert windows.keys(ts, "month").tolist() == ["2013-07", "2013-07", "2013-12"]
    assert windows.keys(ts, "rows:2", np.arange(3)).tolist() == [
        "rows-0000000",
        "rows-0000000",
        "rows-0000001",
    ]
    for key, kind in (("2013-07-01", "day"), ("2014-W01", "week"), ("2013-12", "month")):
        b = windows.bounds(key, kind)
        assert b is not None and b[0] < b[1]
        assert windows.keys(pd.Series([b[0]]), kind).iloc[0] == key
    assert windows.bounds("rows-0000001", "rows:2") is None


def test_monitoring_modules_import_no_other_stage_or_training_library() -> None:
    import subprocess
    import sys

    # Every module of the package, so a new one cannot slip a training import in.
    code = (
        "import importlib, pkgutil, sys\n"
        "import mlcycle.monitor as pkg\n"
        "for info in pkgutil.iter_modules(pkg.__path__):\n"
        "    importlib.import_module(f'mlcycle.monitor.{info.name}')\n"
        "assert 'mlcycle.monitor.engine' in sys.modules\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('optuna', 'lightgbm')\n"
        "       or m.startswith(('mlcycle.serve', 'mlcycle.evaluate', 'mlcycle.train',\n"
        "                        'mlcycle.registry', 'mlcycle.prep', 'mlcycle.pipeline'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
