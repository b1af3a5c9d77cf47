"""ONNX export parity: on which rows it is checked, what the manifest says, what is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import joblib
import pytest
from serve_fixtures import FEATURES, build_bundle, flights_frame

from mlcycle.cli.export import holdout_split
from mlcycle.errors import BadInput
from mlcycle.registry.export import (
    HOLDOUT,
    REFERENCE_SAMPLE,
    export_bundle,
    try_export_bundle,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("b") / "b", encoder="ordinal")


@pytest.fixture
def folder(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "bundle"))


def manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "onnx" / "manifest.json").read_text())


def test_register_time_parity_uses_the_holdout_rows(folder: Path) -> None:
    holdout = flights_frame(700, seed=21)
    report = try_export_bundle(folder, holdout)
    assert report is not None and report["passed"]
    assert report["source"] == HOLDOUT
    # Rows with a null where the contract forbids it are dropped; the rest are all used.
    usable = holdout.dropna(subset=["distance", "carrier", "weekend"])
    assert report["rows"] == len(usable) == 700
    parity = manifest(folder)["parity"]
    assert parity["source"] == HOLDOUT and parity["rows"] == 700
    assert json.loads((folder / "onnx" / "parity.json").read_text()) == parity


def test_without_a_holdout_the_reference_sample_is_used_and_said(folder: Path) -> None:
    report = try_export_bundle(folder)
    assert report is not None and report["passed"]
    assert report["source"] == REFERENCE_SAMPLE
    assert manifest(folder)["parity"]["rows"] == 500  # the fixture's reference.parquet


def test_native_categorical_conversion_is_refused_on_holdout_rows(folder: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = joblib.load(folder / "model.joblib")
    frame = flights_frame(1500)
    # Native categorical splits on the ordinal codes: skl2onnx converts them wrongly.
    model.steps[-1] = (
        "model",
        HistGradientBoostingClassifier(max_iter=30, categorical_features=[3, 4]),
    )
    model.fit(frame[FEATURES], frame["delayed"])
    joblib.dump(model, folder / "model.joblib")
    with pytest.raises(BadInput) as info:
        export_bundle(folder, flights_frame(600, seed=5))
    text = str(info.value)
    # Caught by the parity check itself (not a converter error), with the evidence.
    assert "refusing" in text and "600 holdout rows" in text
    assert float(text.split("by up to ")[1].split(" ")[0]) > 0.05
    assert not (folder / "onnx").exists()
    # At registration the same failure only means "no export", never a failed run.
    assert try_export_bundle(folder, flights_frame(600, seed=5)) is None
    assert not (folder / "onnx").exists()


class _Store:
    """Just enough of a store for lineage walks: child → [(role, parent, kind)]."""

    def __init__(self, root: Path, edges: dict[str, list[tuple[str, str, str]]]) -> None:
        self.root = root
        self.edges = edges

    def parents(self, child: str) -> list[tuple[str, str, str]]:
        return self.edges.get(child, [])

    def path(self, artifact: str) -> Path:
        return self.root / artifact


class _Project:
    def __init__(self, store: _Store) -> None:
        self.store = store


def test_models_export_finds_the_holdout_through_the_lineage(tmp_path: Path) -> None:
    (tmp_path / "splits1").mkdir()
    flights_frame(50).to_parquet(tmp_path / "splits1" / "test.parquet")
    edges = {
        "bundle1": [("blessing", "bl1", "blessing"), ("evaluation", "ev1", "evaluation")],
        "ev1": [("baseline", "m0", "model"), ("splits", "splits1", "splits")],
    }
    project = _Project(_Store(tmp_path, edges))
    assert holdout_split(project, "bundle1") == tmp_path / "splits1" / "test.parquet"
    # No evaluation in the lineage, or its split is gone: no holdout (the caller falls back).
    assert holdout_split(project, "other") is None
    (tmp_path / "splits1" / "test.parquet").unlink()
    assert holdout_split(project, "bundle1") is None


def test_embedded_example_reproduces_the_pipeline(folder: Path) -> None:
    import importlib.util

    import numpy as np

    from mlcycle.serve import ModelRuntime

    example = Path(__file__).resolve().parents[2] / "examples" / "embedded" / "predict.py"
    spec = importlib.util.spec_from_file_location("embedded_predict", example)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert export_bundle(folder, flights_frame(300, seed=8))["passed"]
    frame = flights_frame(200, seed=9)
    frame.loc[::9, "carrier"] = "ZZ"  # unknown: the manifest's NaN code, as the pipeline does
    records = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in frame[FEATURES].astype(object).to_dict("records")
    ]
    results = module.predict(folder / "onnx", records)
    rt = ModelRuntime.load(folder, warmup=False)
    truth = rt.model.predict_proba(frame[FEATURES])
    ours = np.array([[r["probabilities"][str(c)] for c in rt.model.classes_] for r in results])
    assert np.max(np.abs(ours - truth)) <= 1e-5
    assert [r["prediction"] for r in results] == rt.model.classes_[truth.argmax(axis=1)].tolist()
