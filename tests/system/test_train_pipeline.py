"""The train step end to end through the CLI: tuning with CV on two families, tracked runs,
the model-tests artifact, caching, and the same predictions from a fresh process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

MLCYCLE = [str(Path(sys.executable).parent / "mlcycle")]

SPEC = """
project: cancer
problem: {task: binary, target: malignant, positive_label: true, primary_metric: roc_auc}
data: {source: {path: data/cancer.parquet}}
prepare: {split: {strategy: stratified, valid_fraction: 0.2, test_fraction: 0.2}}
train:
  seed: 7
  cv: {kind: stratified, folds: 3}
  tuning: {trials: 3}
  candidates:
    - name: lr
      estimator: logistic_regression
      search: {C: {type: log, low: 0.01, high: 10}}
    - name: rf
      estimator: random_forest
      params: {n_estimators: 15}
      search: {max_depth: {type: int, low: 2, high: 6}}
  model_tests:
    directional:
      - {column: worst_radius, delta: 5, expect: increase, max_fraction: 0.2, severity: warn}
    invariance:
      - {column: mean_fractal_dimension, values: [0.05, 0.07], epsilon: 0.5}
    cases:
      - name: huge tumour
        row: {worst_radius: 35, worst_perimeter: 250, worst_area: 4000, worst_concave_points: 0.3}
        label: true
        severity: warn
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLCYCLE, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def _project(folder: Path) -> Path:
    raw = load_breast_cancer(as_frame=True).frame
    df = raw.rename(columns=lambda c: c.replace(" ", "_"))
    df["malignant"] = df.pop("target") == 0
    (folder / "data").mkdir(parents=True)
    df.to_parquet(folder / "data" / "cancer.parquet", index=False)
    (folder / "mlcycle.yaml").write_text(SPEC)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = _project(tmp_path_factory.mktemp("cancer"))
    done = _cli("run", "--until", "train", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder, json.loads(done.stdout)


def test_train_step_tunes_tracks_and_tests(trained: tuple[Path, dict]) -> None:
    folder, report = trained
    step = next(s for s in report["steps"] if s["step"] == "train")
    assert step["status"] == "ran"
    assert step["summary"]["best"] in ("lr", "rf")
    assert step["summary"]["model_tests"]["passed"] is True
    assert set(report["outputs"]) >= {"model", "baseline", "model_tests"}

    runs = json.loads(_cli("runs", "list", "--json", "-n", "100", cwd=folder).stdout)
    by_role: dict[str, list[dict]] = {}
    for run in runs:
        by_role.setdefault(run["tags"].get("role", "parent"), []).append(run)
    trials = by_role["trial"]
    assert len(trials) == 6  # 3 trials × 2 families, each a run
    assert all(len(t["params"]) > 0 and t["parent_id"] for t in trials)
    candidates = by_role["candidate"]
    assert {c["name"] for c in candidates} == {"lr", "rf"}
    for c in candidates:
        assert c["seed"] == 7 and c["dataset_id"] and c["spec_hash"] and c["host"]
        assert c["tags"]["mlcycle.lib.scikit-learn"] and c["duration_s"] > 0
        assert "oof_predictions.parquet" in c["files"]  # out-of-fold predictions kept
        assert c["metrics"]["valid_roc_auc"] > 0.9
    assert {b["name"] for b in by_role["baseline"]} == {"baseline", "baseline_most_frequent"}
    [parent] = by_role["parent"]
    assert parent["tags"]["model_tests_passed"] == "True"

    compared = json.loads(_cli("runs", "compare", "lr", "rf", "--json", cwd=folder).stdout)
    assert "valid_roc_auc" in compared["metrics"] and "C" in compared["params"]
    shown = _cli("runs", "show", candidates[0]["id"][:8], cwd=folder)
    assert shown.returncode == 0 and "valid_roc_auc" in shown.stdout

    missing = _cli("runs", "show", "nope", cwd=folder)
    assert missing.returncode == 2 and "no run 'nope'" in missing.stderr


def test_model_tests_artifact_and_cache(trained: tuple[Path, dict]) -> None:
    folder, report = trained
    tests_id = report["outputs"]["model_tests"]
    record = _record(folder, tests_id)
    names = [c["name"] for c in record["checks"]]
    assert {"predictions_finite", "probabilities_valid", "same_seed_same_predictions"} <= set(names)
    assert "directional:worst_radius+5" in names and "case:huge tumour" in names
    again = _cli("run", "--until", "train", "--json", cwd=folder)
    step = next(s for s in json.loads(again.stdout)["steps"] if s["step"] == "train")
    assert step["status"] == "cached"


def _record(folder: Path, artifact_id: str) -> dict:
    from mlcycle.store import Store

    store = Store.open(folder)
    try:
        return store.record(artifact_id)
    finally:
        store.close()


def test_same_spec_data_and_seed_give_the_same_predictions_in_a_fresh_process(
    trained: tuple[Path, dict], tmp_path: Path
) -> None:
    folder, report = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(folder / "data", copy / "data")
    shutil.copy(folder / "mlcycle.yaml", copy / "mlcycle.yaml")
    done = _cli("run", "--until", "train", "--json", cwd=copy)
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)

    def predictions(project: Path, model_id: str) -> np.ndarray:
        from mlcycle.store import Store

        store = Store.open(project)
        model = joblib.load(store.path(model_id) / "model.joblib")
        store.close()
        rows = pd.read_parquet(project / "data" / "cancer.parquet")
        return model.predict_proba(rows.drop(columns=["malignant"]))[:, 1]

    a = predictions(folder, report["outputs"]["model"])
    b = predictions(copy, second["outputs"]["model"])
    assert np.max(np.abs(a - b)) <= 1e-12
