"""A runtime built from the ONNX export: no unpickling, no scikit-learn, same answers.

``ModelRuntime.load(..., from_export=True)`` (what `mlcycle predict` does for
engine auto/onnx) builds the plan from the manifest's preprocessing and trusts
the export's parity record; the pipeline is unpickled only when something needs
it, and then it must be the model the manifest describes.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))

from serve_fixtures import FEATURES, build_bundle, cli_in_fresh_process, flights_frame

from mlcycle.errors import BadInput
from mlcycle.serve.batch.job import predict_file
from mlcycle.serve.model.runtime import ONNX_TOLERANCE, ModelRuntime

# Modules a batch job scoring through ONNX must not import (scikit-learn pulls in SciPy).
HEAVY = ("sklearn", "scipy", "joblib")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from mlcycle.registry.export import export_bundle

    root = tmp_path_factory.mktemp("onnx-bundles")
    out = {
        "binary": build_bundle(root / "binary", unseen="unknown"),
        "regression": build_bundle(
            root / "regression", task="regression", encoder="ordinal", unseen="unknown"
        ),
    }
    for folder in out.values():
        assert export_bundle(folder, flights_frame(400, seed=3))["passed"]
    return out


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame = flights_frame(300, seed=9)[FEATURES].copy()
    frame.loc[::7, "carrier"] = "ZZ"  # unseen: the lookup and the encoder must agree
    frame.loc[::11, "origin"] = None
    return frame


def copy_with_manifest(source: Path, target: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    shutil.copytree(source, target)
    path = target / "onnx" / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_built_from_the_export_without_the_pipeline_and_scores_the_same(
    folders: dict[str, Path], rows: pd.DataFrame, task: str
) -> None:
    full = ModelRuntime.load(folders[task])
    lazy = ModelRuntime.load(folders[task], from_export=True)
    assert (lazy.engine, lazy.onnx_checked, lazy.model_loaded) == ("onnxruntime", "export", False)
    assert (full.onnx_checked, full.model_loaded) == ("load", True)
    assert lazy.plan == full.plan and lazy.classes == full.classes
    frame = full.validate_frame(rows)
    ours, theirs = lazy.predict(lazy.validate_frame(rows)), full.predict(frame)
    assert lazy.model_loaded is False  # scoring through ONNX never needed it
    assert ours["predictions"] == theirs["predictions"]
    if task == "binary":
        np.testing.assert_allclose(ours["probabilities"], theirs["probabilities"], atol=1e-6)
    # Something that needs scikit-learn unpickles it, checked against the manifest.
    assert lazy.plan is not None
    matrix = lazy.plan.encode_frame(frame)
    labels, _ = lazy.predict_matrix(matrix, onnx=False)
    assert lazy.model_loaded is True
    assert labels == full.predict_matrix(matrix, onnx=False)[0]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: [b.pop("exact") for b in m["preprocessing"]], id="no-exact-flags"),
        pytest.param(lambda m: m["preprocessing"][0].update(exact=False), id="a-loose-block"),
        pytest.param(lambda m: m["parity"].update(max_abs_diff=10 * ONNX_TOLERANCE), id="loose"),
        pytest.param(lambda m: m["parity"].update(max_abs_diff=None), id="no-diff"),
        pytest.param(lambda m: m["parity"].update(passed=False), id="failed-parity"),
        pytest.param(lambda m: m["input"].update(shape=[-1, 99]), id="another-width"),
        pytest.param(lambda m: m.update(task="multiclass"), id="another-task"),
        pytest.param(lambda m: m.update(preprocessing="?"), id="malformed"),
    ],
)
def test_an_export_it_cannot_trust_loads_the_pipeline(
    folders: dict[str, Path], tmp_path: Path, change: Callable[[dict[str, Any]], Any]
) -> None:
    folder = copy_with_manifest(folders["binary"], tmp_path / "b", change)
    rt = ModelRuntime.load(folder, from_export=True, warmup=False)
    assert rt.model_loaded is True
    assert rt.onnx_checked != "export"


def test_a_manifest_that_does_not_describe_the_pipeline_is_refused_on_unpickling(
    folders: dict[str, Path], tmp_path: Path, rows: pd.DataFrame
) -> None:
    def swap_categories(manifest: dict[str, Any]) -> None:
        block = next(b for b in manifest["preprocessing"] if b["how"] != "number")
        block["categories"] = block["categories"][::-1]

    folder = copy_with_manifest(folders["binary"], tmp_path / "b", swap_categories)
    rt = ModelRuntime.load(folder, from_export=True, warmup=False)
    assert rt.onnx_checked == "export"  # the manifest alone cannot tell; the pipeline can
    with pytest.raises(BadInput, match=r"manifest\.json does not describe model\.joblib"):
        _ = rt.model


def test_batch_predict_from_an_export_imports_no_scikit_learn(
    folders: dict[str, Path], tmp_path: Path, rows: pd.DataFrame
) -> None:
    source = tmp_path / "in.parquet"
    rows.assign(flight_id=[f"F{i}" for i in range(len(rows))]).to_parquet(source)
    out = tmp_path / "onnx.parquet"
    stdout, heavy = cli_in_fresh_process(
        ["predict", str(folders["binary"]), "-i", str(source), "-o", str(out), "--json"], HEAVY
    )
    assert heavy == []
    assert json.loads(stdout)["engine"] == "onnxruntime"
    # The same rows through the scikit-learn engine, as that engine loads them.
    expected = tmp_path / "sklearn.parquet"
    predict_file(ModelRuntime.load(folders["binary"]), str(source), str(expected), engine="sklearn")
    ours, theirs = pd.read_parquet(out), pd.read_parquet(expected)
    assert ours["prediction"].tolist() == theirs["prediction"].tolist()
    np.testing.assert_allclose(ours["probability"], theirs["probability"], atol=1e-6)
    assert ours["flight_id"].tolist() == theirs["flight_id"].tolist()


def test_a_batch_job_whose_export_will_not_open_falls_back_to_scikit_learn(
    folders: dict[str, Path], tmp_path: Path, rows: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    # `mlcycle predict` opens ONNX Runtime only when it scores through it (lazy_onnx):
    # a damaged model.onnx (in a folder no content id protects) is found then.
    folder = tmp_path / "b"
    shutil.copytree(folders["binary"], folder)
    (folder / "onnx" / "model.onnx").write_bytes(b"not an onnx model")
    rt = ModelRuntime.load(folder, from_export=True, lazy_onnx=True, warmup=False)
    assert (rt.onnx_checked, rt.model_loaded) == ("export", False)  # nothing opened yet
    source = tmp_path / "in.parquet"
    rows.assign(flight_id=[f"F{i}" for i in range(len(rows))]).to_parquet(source)
    with caplog.at_level("WARNING", logger="mlcycle.serve"):
        result = predict_file(rt, str(source), str(tmp_path / "out.parquet"))
    assert result["engine"] == "sklearn-compiled"
    assert "cannot open the ONNX export" in caplog.text
    expected = tmp_path / "sklearn.parquet"
    predict_file(ModelRuntime.load(folders["binary"]), str(source), str(expected), engine="sklearn")
    ours, theirs = pd.read_parquet(tmp_path / "out.parquet"), pd.read_parquet(expected)
    assert ours["probability"].tolist() == theirs["probability"].tolist()


def test_a_batch_command_freezes_its_heap_only_as_it_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    import atexit
    import gc

    from mlcycle.serve.model import gctune

    registered: list[Callable[[], Any]] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(gctune, "_exit_freeze", False)
    frozen = gc.get_freeze_count()
    gctune.freeze_for_exit()
    gctune.freeze_for_exit()  # `mlcycle predict` twice in one process (a test): once at exit
    assert registered == [gc.freeze] and gc.get_freeze_count() == frozen
