"""A tree ensemble compiled to native code: scikit-learn's answers, or not used at all.

The registry compiles a bundle's ensemble (Treelite → TL2cgen's C → the
machine's compiler) and keeps the library only when it reproduces the
pipeline; a batch job scores through it only when it was built for this
platform and re-scores its check rows. Every refusal leaves the job to ONNX
Runtime or scikit-learn, and ``--engine native`` says why it cannot run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from serve_fixtures import FEATURES, build_bundle, cli_in_fresh_process, flights_frame

from mlcycle import native
from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput
from mlcycle.registry import native as compiler
from mlcycle.serve import ModelRuntime, predict_file
from mlcycle.serve.model.native_model import NativeModel

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CC") or "cc") is None and shutil.which("gcc") is None,
    reason="no C compiler on this machine",
)
PARITY_ROWS = 400


def compiled(folder: Path) -> Path:
    report = compiler.compile_bundle(folder, flights_frame(PARITY_ROWS, seed=3))
    assert report["passed"] and report["max_abs_diff"] <= native.TOLERANCE
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("native")
    return {
        "binary": compiled(build_bundle(root / "binary", encoder="ordinal", unseen="unknown")),
        "multiclass": compiled(build_bundle(root / "multi", task="multiclass")),
        "regression": compiled(build_bundle(root / "reg", task="regression", encoder="ordinal")),
    }


def scoring_frame(n: int, seed: int) -> pd.DataFrame:
    """Rows with nulls, unseen categories (→ missing codes) and a few contract breaks."""
    frame = flights_frame(n, seed=seed)
    frame.loc[::9, "carrier"] = "ZZ"
    frame.loc[::13, "origin"] = None
    frame["distance"] = frame["distance"].astype("float64")
    frame.loc[5, "distance"] = np.nan  # not nullable: rejected
    return frame


def score(
    folder: Path, frame: pd.DataFrame, tmp: Path, engine: str = "auto"
) -> tuple[dict[str, Any], pd.DataFrame]:
    source = tmp / f"in-{engine}.parquet"
    frame.to_parquet(source, index=False)
    out = tmp / f"out-{engine}.parquet"
    result = predict_file(
        ModelRuntime.load(folder, version=4), str(source), str(out), chunk_rows=7000, engine=engine
    )
    return result, pd.read_parquet(out)


def expected(folder: Path, rows: pd.DataFrame, task: str) -> np.ndarray:
    model = joblib.load(folder / "model.joblib")
    kept = rows[FEATURES].reset_index(drop=True)
    if task == "regression":
        return np.asarray(model.predict(kept))
    return np.asarray(model.predict_proba(kept))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_batch_scores_through_the_native_model_with_the_pipelines_answers(
    folders: dict[str, Path], tmp_path: Path, task: str
) -> None:
    frame = scoring_frame(16_000, seed=21)
    result, out = score(folders[task], frame, tmp_path)
    assert result["engine"] == "native"
    unseen_rejected = task != "binary"  # the binary bundle maps unseen categories to missing
    assert result["rejected"] == (1 + (frame["carrier"] == "ZZ").sum() if unseen_rejected else 1)
    kept = frame[frame["flight_id"].isin(out["flight_id"])]
    assert out["flight_id"].tolist() == kept["flight_id"].tolist()  # order kept across slices
    truth = expected(folders[task], kept, task)
    if task == "regression":
        np.testing.assert_allclose(out["prediction"], truth, rtol=0, atol=1e-9)
        return
    classes = joblib.load(folders[task] / "model.joblib").classes_
    if task == "binary":
        np.testing.assert_allclose(out["probability"], truth[:, 1], rtol=0, atol=1e-12)
    else:
        got = out[[f"proba_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(got, truth, rtol=0, atol=1e-12)
    # The labels are the scikit-learn engine's, row for row.
    _, by_sklearn = score(folders[task], frame, tmp_path, engine="sklearn")
    assert out["prediction"].tolist() == by_sklearn["prediction"].tolist()


def test_a_random_forest_is_fed_what_scikit_learn_compares(tmp_path: Path) -> None:
    # scikit-learn's forests compare float32 inputs: fed float64, a value between
    # float32(x) and a threshold would take the other branch.
    from sklearn.ensemble import RandomForestClassifier

    folder = build_bundle(tmp_path / "rf", encoder="ordinal")
    model = joblib.load(folder / "model.joblib")
    train = flights_frame(1500, seed=0)
    model.steps[-1] = (
        "model",
        RandomForestClassifier(n_estimators=15, max_depth=8, random_state=0),
    )
    model.fit(train[FEATURES], train["delayed"])
    joblib.dump(model, folder / "model.joblib")
    report = compiler.compile_bundle(folder, flights_frame(PARITY_ROWS, seed=3))
    manifest = json.loads(Bundle(folder).native_manifest_path.read_text())
    assert manifest["input_dtype"] == "float32" and report["max_abs_diff"] <= 1e-12
    # Just above each dep_delay threshold: float32 rounds the value back onto a
    # threshold that float32 holds (the tree goes left), float64 does not (right).
    forest = model.steps[-1][1]
    column = list(model[:-1].get_feature_names_out()).index("dep_delay")
    thresholds = sorted(
        {
            t
            for tree in forest.estimators_
            for f, t in zip(tree.tree_.feature, tree.tree_.threshold, strict=True)
            if f == column and np.isfinite(t) and float(np.float32(t)) == t
        }
    )
    assert thresholds
    frame = flights_frame(len(thresholds), seed=4)
    frame["dep_delay"] = np.nextafter(np.array(thresholds), np.inf)
    assert (frame["dep_delay"].astype(np.float32).astype(np.float64) != frame["dep_delay"]).all()
    result, out = score(folder, frame, tmp_path)
    assert result["engine"] == "native"
    kept = frame[frame["flight_id"].isin(out["flight_id"])]
    np.testing.assert_allclose(
        out["probability"], expected(folder, kept, "binary")[:, 1], rtol=0, atol=1e-12
    )


def test_a_lightgbm_model_compiles_and_answers_as_lightgbm(tmp_path: Path) -> None:
    lightgbm = pytest.importorskip("lightgbm")  # the "train" extra; dev installs it
    folder = build_bundle(tmp_path / "lgbm", task="multiclass", encoder="ordinal")
    model = joblib.load(folder / "model.joblib")
    train = flights_frame(1500, seed=0)
    model.steps[-1] = ("model", lightgbm.LGBMClassifier(n_estimators=25, verbose=-1))
    model.fit(train[FEATURES], train["status"])
    joblib.dump(model, folder / "model.joblib")
    report = compiler.compile_bundle(folder, flights_frame(PARITY_ROWS, seed=3))
    assert report["max_abs_diff"] <= 1e-12
    assert json.loads(Bundle(folder).native_manifest_path.read_text())["input_dtype"] == "float64"
    frame = scoring_frame(3000, seed=12)
    result, out = score(folder, frame, tmp_path)
    assert result["engine"] == "native"
    kept = frame[frame["flight_id"].isin(out["flight_id"])]
    truth = expected(folder, kept, "multiclass")
    got = out[[f"proba_{c}" for c in model.classes_]].to_numpy()
    np.testing.assert_allclose(got, truth, rtol=0, atol=1e-12)


def test_unsupported_models_and_missing_tools_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    folder = build_bundle(tmp_path / "lr", encoder="ordinal")
    model = joblib.load(folder / "model.joblib")
    train = flights_frame(1500, seed=0).fillna({"dep_delay": 0.0, "origin": "ATL"})
    model.steps[-1] = ("model", LogisticRegression(max_iter=200))
    model.fit(train[FEATURES], train["delayed"])
    joblib.dump(model, folder / "model.joblib")
    rows = flights_frame(PARITY_ROWS, seed=3).fillna({"dep_delay": 0.0, "origin": "ATL"})
    with pytest.raises(BadInput, match="cannot compile a LogisticRegression") as info:
        compiler.compile_bundle(folder, rows)
    assert "ONNX Runtime or scikit-learn scores this model" in info.value.to_dict()["fix"]
    assert not Bundle(folder).native_dir.exists()

    hgb = build_bundle(tmp_path / "hgb", encoder="ordinal")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(BadInput, match="no C compiler found") as info:
        compiler.compile_bundle(hgb, flights_frame(PARITY_ROWS, seed=3))
    assert "apt-get install gcc" in info.value.to_dict()["fix"]
    # Registration goes on without it: a log line, no native/ folder, no exception.
    assert compiler.try_compile_bundle(hgb, flights_frame(PARITY_ROWS, seed=3)) is None
    assert not Bundle(hgb).native_dir.exists()
    monkeypatch.delenv("CC")

    monkeypatch.setattr(compiler, "MAX_SOURCE_BYTES", 1000)
    with pytest.raises(BadInput, match="its C source is"):
        compiler.compile_bundle(hgb, flights_frame(PARITY_ROWS, seed=3))
    assert not Bundle(hgb).native_dir.exists()


def test_a_library_that_does_not_reproduce_the_pipeline_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = build_bundle(tmp_path / "b", encoder="ordinal")
    # A planted bug in the row loop: every row's score drifts by 1e-6.
    drifting = native.GLUE_SOURCE.replace(
        "predict(row, 0, dst);", "predict(row, 0, dst); dst[0] += 1e-6;"
    )
    assert drifting != native.GLUE_SOURCE
    monkeypatch.setattr(native, "GLUE_SOURCE", drifting)
    with pytest.raises(BadInput, match="refusing the native model") as info:
        compiler.compile_bundle(folder, flights_frame(PARITY_ROWS, seed=3))
    assert "differs from scikit-learn by up to 1e-06" in info.value.to_dict()["why"]
    assert not Bundle(folder).native_dir.exists()


def copy_changed(source: Path, target: Path, change: Any) -> Path:
    shutil.copytree(source, target)
    path = Bundle(target).native_manifest_path
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize(
    ("name", "change", "logged"),
    [
        ("platform", lambda m: m.update(platform="darwin-arm64-libc"), "compiled for darwin"),
        ("parity", lambda m: m["parity"].update(passed=False), "parity record did not pass"),
        ("format", lambda m: m.update(format="mlcycle-native/9"), "unknown format"),
        ("check", lambda m: m["check"]["expected"][0].__setitem__(0, 0.123), "check rows"),
        ("width", lambda m: m.update(width=99), "reads 99 columns"),
        ("classes", lambda m: m.update(estimator_classes=["a", "b"]), "classes"),
    ],
)
def test_a_library_not_trusted_here_leaves_the_job_to_another_engine(
    folders: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    change: Any,
    logged: str,
) -> None:
    folder = copy_changed(folders["binary"], tmp_path / name, change)
    rt = ModelRuntime.load(folder, version=1)
    with caplog.at_level("INFO", logger="mlcycle.serve"):
        assert NativeModel.load(Bundle(folder), rt) is None
    assert logged in caplog.text
    frame = scoring_frame(500, seed=2)
    result, _ = score(folder, frame, tmp_path)
    assert result["engine"] == "sklearn-compiled"  # this bundle has no ONNX export
    with pytest.raises(BadInput, match="--engine native: this model has no usable native"):
        score(folder, frame, tmp_path / "..", engine="native")


def test_a_damaged_library_file_is_ignored(
    folders: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "b"
    shutil.copytree(folders["binary"], folder)
    lib = Bundle(folder).native_lib_path
    lib.write_bytes(lib.read_bytes()[:1000])  # truncated: loading it would fault
    rt = ModelRuntime.load(folder, version=1)
    with caplog.at_level("WARNING", logger="mlcycle.serve"):
        assert NativeModel.load(Bundle(folder), rt) is None
    assert "model.so is not the file its manifest records" in caplog.text
    assert score(folder, scoring_frame(300, seed=3), tmp_path)[0]["engine"] == "sklearn-compiled"


def test_engine_choices_around_the_native_model(folders: dict[str, Path], tmp_path: Path) -> None:
    frame = scoring_frame(2000, seed=7)
    assert score(folders["binary"], frame, tmp_path, engine="native")[0]["engine"] == "native"
    assert score(folders["binary"], frame, tmp_path, engine="sklearn")[0]["engine"] == (
        "sklearn-compiled"
    )
    plain = build_bundle(tmp_path / "plain", encoder="ordinal")  # never compiled
    with pytest.raises(BadInput, match="no usable native library") as info:
        score(plain, frame, tmp_path / "..", engine="native")
    assert "re-register" in info.value.to_dict()["fix"]
    assert not (tmp_path / ".." / "out-native.parquet").exists()


def test_batch_through_the_native_model_imports_no_scikit_learn(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    from mlcycle.registry.export import export_bundle

    folder = tmp_path / "b"
    shutil.copytree(folders["binary"], folder)
    assert export_bundle(folder, flights_frame(PARITY_ROWS, seed=3))["passed"]
    source = tmp_path / "in.parquet"
    frame = scoring_frame(3000, seed=5)
    frame.to_parquet(source, index=False)
    out = tmp_path / "out.parquet"
    stdout, heavy = cli_in_fresh_process(
        ["predict", str(folder), "-i", str(source), "-o", str(out), "--json"],
        # ONNX Runtime too: the export gave the plan, the native model scores.
        ("sklearn", "scipy", "joblib", "treelite", "tl2cgen", "onnx", "onnxruntime"),
    )
    assert heavy == []
    assert json.loads(stdout)["engine"] == "native"
    scored = pd.read_parquet(out)
    kept = frame[frame["flight_id"].isin(scored["flight_id"])]
    np.testing.assert_allclose(
        scored["probability"], expected(folder, kept, "binary")[:, 1], rtol=0, atol=1e-12
    )


def test_probabilities_follow_the_bundles_class_order(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    # meta.json may list the classes in another order than the estimator's classes_.
    folder = tmp_path / "reordered"
    shutil.copytree(folders["multiclass"], folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["classes"] = list(reversed(meta["classes"]))
    (folder / "meta.json").write_text(json.dumps(meta))
    frame = scoring_frame(1500, seed=6)
    result, out = score(folder, frame, tmp_path)
    assert result["engine"] == "native"
    _, by_sklearn = score(folder, frame, tmp_path, engine="sklearn")
    columns = [f"proba_{c}" for c in meta["classes"]]
    np.testing.assert_allclose(out[columns], by_sklearn[columns], rtol=0, atol=1e-12)
    assert out["prediction"].tolist() == by_sklearn["prediction"].tolist()
