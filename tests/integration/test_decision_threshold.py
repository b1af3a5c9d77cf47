"""The benefit matrix's decision threshold is what every binary label is chosen by.

The evaluation chooses the threshold on validation; the gate writes it into the
bundle's meta.json; the runtime (every engine), /predict, /v2 infer and batch
label a row positive when P(positive) ≥ it; ``models show`` and the model card
state it. Without one, labels stay the most probable class.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from serve_fixtures import FEATURES, build_bundle, flights_frame, live_server
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings
from typer.testing import CliRunner

from mlcycle.artifacts import BundleMeta
from mlcycle.cli.main import app
from mlcycle.errors import BadInput
from mlcycle.pipeline.project import Project
from mlcycle.serve import ModelRuntime, ServeSettings, create_app, predict_file

THRESHOLD = 0.2
JSON = {"content-type": "application/json"}


def _set_threshold(folder: Path, threshold: float | None) -> Path:
    meta = json.loads((folder / "meta.json").read_text())
    meta["decision_threshold"] = threshold
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def _exported(folder: Path, threshold: float | None) -> Path:
    from mlcycle.registry.export import export_bundle

    build_bundle(folder, encoder="ordinal")
    export_bundle(folder, flights_frame(400, seed=3))
    return _set_threshold(folder, threshold)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("threshold")
    return {
        "threshold": _exported(root / "with", THRESHOLD),
        "plain": _exported(root / "without", None),
    }


def _engine(folder: Path, engine: str) -> ModelRuntime:
    rt = ModelRuntime.load(folder, version=1)
    if engine == "sklearn-compiled":
        rt.compile(onnx=False)
    elif engine == "sklearn-pipeline":
        rt.plan, rt.estimator, rt.onnx = None, None, None
    assert rt.engine == engine
    return rt


@pytest.fixture(scope="module")
def sample(folders: dict[str, Path]) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Clean records with P(delayed) on both sides of 0.2 and of 0.5, and their P."""
    rt = ModelRuntime.load(folders["plain"])
    frame = flights_frame(600, seed=21).dropna()
    frame = frame[frame["dep_delay"].between(-100, 300)].reset_index(drop=True)
    p = rt.model.predict_proba(frame[FEATURES])[:, 1]
    picks = np.r_[
        np.flatnonzero(p < 0.15)[:3],
        np.flatnonzero((p > 0.25) & (p < 0.45))[:4],  # the rows 0.5 calls negative
        np.flatnonzero(p > 0.6)[:3],
    ]
    records = [
        {
            "dep_delay": float(row.dep_delay),
            "distance": int(row.distance),
            "carrier": str(row.carrier),
            "origin": str(row.origin),
            "weekend": bool(row.weekend),
        }
        for row in frame.iloc[picks].itertuples()
    ]
    assert len(records) == 10
    return records, p[picks]


@pytest.mark.parametrize("engine", ["onnxruntime", "sklearn-compiled", "sklearn-pipeline"])
def test_the_runtime_labels_with_the_threshold(
    folders: dict[str, Path], sample: tuple[list[dict[str, Any]], np.ndarray], engine: str
) -> None:
    records, p = sample
    rt = _engine(folders["threshold"], engine)
    wanted = (p >= THRESHOLD).tolist()
    assert any(w and q < 0.5 for w, q in zip(wanted, p, strict=True))  # e.g. P=0.3 → True
    frame = rt.validate_records(records)
    assert rt.predict(frame)["predictions"] == wanted
    labels, proba = rt.predict_arrays(frame)
    assert labels == wanted
    assert proba is not None
    assert rt.class_indices(proba).tolist() == [int(w) for w in wanted]
    matrix = rt.encode_records(records)
    if matrix is not None:
        assert rt.predict_matrix(matrix)[0] == wanted
    # One row alone (the single-row hot path): P≈0.3 is positive.
    one = int(np.flatnonzero((p > 0.25) & (p < 0.45))[0])
    assert rt.predict(rt.validate_records([records[one]]))["predictions"] == [True]
    assert rt.decision_threshold == THRESHOLD


@pytest.mark.parametrize("engine", ["onnxruntime", "sklearn-compiled", "sklearn-pipeline"])
def test_without_a_threshold_labels_are_the_most_probable_class(
    folders: dict[str, Path], sample: tuple[list[dict[str, Any]], np.ndarray], engine: str
) -> None:
    records, p = sample
    rt = _engine(folders["plain"], engine)
    # A guard: this held before thresholds existed and must keep holding.
    assert rt.predict(rt.validate_records(records))["predictions"] == (p > 0.5).tolist()
    labels, proba = rt.predict_arrays(rt.validate_records(records))
    assert proba is not None and labels == (proba.argmax(axis=1) == 1).tolist()


@pytest.fixture(scope="module")
def client(folders: dict[str, Path]) -> Iterator[httpx.Client]:
    app_ = create_app(ModelRuntime.load(folders["threshold"], version=1), ServeSettings())
    with live_server(app_) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        yield c


def test_predict_and_infer_label_with_the_threshold(
    client: httpx.Client, sample: tuple[list[dict[str, Any]], np.ndarray]
) -> None:
    records, p = sample
    wanted = (p >= THRESHOLD).tolist()
    body = client.post("/predict", json=records).json()
    assert body["predictions"] == wanted, body
    one = int(np.flatnonzero((p > 0.25) & (p < 0.45))[0])
    assert client.post("/predict", json=[records[one]]).json()["predictions"] == [True]
    inputs = [
        {
            "name": name,
            "shape": [len(records)],
            "datatype": {"dep_delay": "FP64", "distance": "INT64", "weekend": "BOOL"}.get(
                name, "BYTES"
            ),
            "data": [r[name] for r in records],
        }
        for name in FEATURES
    ]
    infer = client.post("/v2/models/flights/infer", json={"inputs": inputs})
    assert infer.status_code == 200, infer.text
    assert infer.json()["outputs"][0]["data"] == wanted


@pytest.mark.parametrize("engine", ["onnx", "sklearn"])
def test_batch_labels_with_the_threshold(
    folders: dict[str, Path],
    sample: tuple[list[dict[str, Any]], np.ndarray],
    tmp_path: Path,
    engine: str,
) -> None:
    records, p = sample
    pd.DataFrame(records).to_parquet(tmp_path / "in.parquet", index=False)
    for name, expected in (("threshold", p >= THRESHOLD), ("plain", p > 0.5)):
        rt = ModelRuntime.load(folders[name], version=1)
        out = tmp_path / f"{name}.parquet"
        predict_file(rt, str(tmp_path / "in.parquet"), str(out), engine=engine)
        scored = pd.read_parquet(out)
        np.testing.assert_allclose(scored["probability"], p, atol=1e-6)
        assert scored["prediction"].tolist() == expected.tolist(), name


def test_a_threshold_on_a_multiclass_bundle_is_refused(tmp_path: Path) -> None:
    folder = _set_threshold(build_bundle(tmp_path / "multi", task="multiclass"), 0.3)
    with pytest.raises(BadInput, match="decision threshold on P\\(positive\\) labels binary"):
        ModelRuntime.load(folder)


# --- through the pipeline: the gate writes it, models show and the card state it ------


def _data(n: int = 1600, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    df = pd.DataFrame(X, columns=["x1", "x2", "x3"])
    df["label"] = rng.random(n) < 1 / (1 + np.exp(-(X @ np.array([1.2, 0.6, 0.3]) - 1.0)))
    return df


def _spec(benefit_gate: float) -> dict[str, Any]:
    return {
        "project": "synth",
        "problem": {
            "task": "binary",
            "target": "label",
            "positive_label": True,
            # Missing a positive costs five times a false alarm: the best threshold is low.
            "benefit": {"tp": 40, "tn": 0, "fp": -10, "fn": -50},
        },
        "data": {"source": {"path": "data.parquet"}},
        "prepare": {"split": {"strategy": "random"}},
        "train": {
            "seed": 42,
            "baseline": "prior",
            "candidates": [{"name": "lr", "estimator": "logistic_regression"}],
        },
        "gates": {"thresholds": {"benefit": benefit_gate}, "infra_check": False},
        "evaluate": {"bootstrap": 100},
    }


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    _data().to_parquet(root / "data.parquet", index=False)
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(_spec(-1000.0)))
    project = Project.load(root)
    try:
        project.run()
    finally:
        project.close()
    return root


def test_the_gate_writes_the_threshold_chosen_on_validation(project_root: Path) -> None:
    spec = str(project_root / "mlcycle.yaml")
    result = CliRunner().invoke(app, ["models", "show", "synth/1", "--json", "--spec", spec])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    threshold = shown["benefit"]["threshold"]
    assert 0 < threshold < 0.5
    assert shown["decision_threshold"] == threshold
    checks = {c["name"]: c for c in shown["checks"]}
    assert checks["threshold:benefit"]["passed"]
    assert (
        checks["threshold:benefit"]["figures"]["value"] == shown["benefit"]["per_row"]["candidate"]
    )
    folder = Path(shown["bundle_path"])
    meta = BundleMeta.model_validate_json((folder / "meta.json").read_text())
    assert meta.decision_threshold == threshold
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"Decision threshold: {threshold:.3f}" in card
    rt = ModelRuntime.load(folder)
    assert rt.decision_threshold == threshold


def test_a_benefit_gate_refuses_a_candidate_below_it(project_root: Path) -> None:
    (project_root / "mlcycle.yaml").write_text(yaml.safe_dump(_spec(1000.0)))
    project = Project.load(project_root)
    try:
        run = project.run()
        versions = project.registry.versions("synth")
    finally:
        project.close()
    gate = next(s for s in run.steps if s.step == "gate")
    assert gate.status != "cached"
    assert [(v.version, v.blessed) for v in versions][-1] == (2, False)


def test_a_benefit_gate_without_a_benefit_matrix_is_refused(tmp_path: Path) -> None:
    spec = _spec(0.0)
    del spec["problem"]["benefit"]
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(BadInput, match=r"problem\.benefit"):
        Project.load(tmp_path)
