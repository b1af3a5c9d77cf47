"""Batch prediction: files in, files out, rejects with reasons, nothing left on failure."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serve_fixtures import FEATURES, build_bundle, flights_frame

from mlcycle.errors import BadInput, NotFound
from mlcycle.serve import ModelRuntime, predict_file


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelRuntime]:
    root = tmp_path_factory.mktemp("bundles")
    return {
        "binary": ModelRuntime.load(build_bundle(root / "binary"), version=5),
        "multiclass": ModelRuntime.load(build_bundle(root / "multi", task="multiclass"), version=1),
        "regression": ModelRuntime.load(build_bundle(root / "reg", task="regression")),
    }


@pytest.fixture(scope="module")
def rt(bundles: dict[str, ModelRuntime]) -> ModelRuntime:
    return bundles["binary"]


def dirty_frame(n: int = 2500, seed: int = 11) -> pd.DataFrame:
    """Flights with a few rows that break the contract."""
    frame = flights_frame(n, seed=seed)
    frame.loc[10, "carrier"] = "ZZ"
    frame["distance"] = frame["distance"].astype("float64")  # ints cannot hold NaN
    # Positions scale with n: .loc on a label past the end would append a new all-NaN row.
    frame.loc[n * 3 // 5, "distance"] = np.nan
    frame.loc[n * 24 // 25, "origin"] = "XXX"
    return frame


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_parquet_in_parquet_out(rt: ModelRuntime, tmp_path: Path) -> None:
    frame = dirty_frame()
    frame.to_parquet(tmp_path / "in.parquet")
    chunks: list[int] = []
    started = time.perf_counter()
    result = predict_file(
        rt,
        str(tmp_path / "in.parquet"),
        str(tmp_path / "out.parquet"),
        chunk_rows=1000,
        progress=chunks.append,
    )
    elapsed = time.perf_counter() - started
    assert chunks == [1000, 1000, 500]
    assert result["rows"] == 2500
    assert result["rejected"] == 3
    assert result["output"] == str(tmp_path / "out.parquet")
    assert result["rejects"] == str(tmp_path / "out.rejects.parquet")
    # Rounded to milliseconds: three chunks read, scored and written take more than one,
    # and no more than the call itself.
    assert 0 < result["seconds"] <= round(elapsed, 3) + 0.001
    assert result["engine"] == rt.engine

    out = pd.read_parquet(tmp_path / "out.parquet")
    # out_of_range: the bundle's default policy is flag (tests/integration/test_out_of_range.py)
    assert list(out.columns) == [
        "flight_id",
        "prediction",
        "probability",
        "model_version",
        "out_of_range",
    ]
    good = frame.drop(index=[10, 1500, 2400]).reset_index(drop=True)
    assert out["flight_id"].tolist() == good["flight_id"].tolist()
    proba = rt.model.predict_proba(good[FEATURES])
    np.testing.assert_allclose(out["probability"], proba[:, 1], rtol=0, atol=1e-12)
    assert out["prediction"].tolist() == rt.model.predict(good[FEATURES]).tolist()
    assert set(out["model_version"]) == {5}

    rejects = pd.read_parquet(tmp_path / "out.rejects.parquet")
    assert rejects["flight_id"].tolist() == ["F00010", "F01500", "F02400"]
    assert rejects["reason"].tolist() == [
        "carrier: unseen category 'ZZ'",
        "distance: null, but the contract says it is never null",
        "origin: unseen category 'XXX'",
    ]
    assert set(FEATURES) <= set(rejects.columns)
    assert files_in(tmp_path) == {"in.parquet", "out.parquet", "out.rejects.parquet"}


def test_csv_in_csv_out_with_wrong_types(rt: ModelRuntime, tmp_path: Path) -> None:
    frame = flights_frame(300, seed=12)
    text = frame.astype({"distance": object})
    text.loc[7, "distance"] = "far"
    text.to_csv(tmp_path / "in.csv", index=False)
    totals: list[int | None] = []
    result = predict_file(
        rt,
        str(tmp_path / "in.csv"),
        str(tmp_path / "scored.csv"),
        id_column="flight_id",
        on_total=totals.append,
    )
    assert (result["rows"], result["rejected"]) == (300, 1)
    assert totals == [None]  # CSV has no footer: the total is unknown until read
    out = pd.read_csv(tmp_path / "scored.csv")
    good = frame.drop(index=[7]).reset_index(drop=True)
    np.testing.assert_allclose(
        out["probability"], rt.model.predict_proba(good[FEATURES])[:, 1], rtol=0, atol=1e-12
    )
    rejects = pd.read_parquet(tmp_path / "scored.rejects.parquet")
    assert rejects["reason"].tolist() == ["distance: expected a finite number, got 'far'"]
    assert rejects["distance"].tolist() == ["far"]  # the row as it was, to fix and re-run


def test_folder_and_glob_inputs(rt: ModelRuntime, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    parts = [flights_frame(200, seed=s) for s in (1, 2, 3)]
    for i, part in enumerate(parts):
        part.to_parquet(data / f"part-{i}.parquet")
    (data / "_SUCCESS").write_text("")
    whole = pd.concat(parts, ignore_index=True)
    for source in (str(data), str(data / "part-*.parquet")):
        totals: list[int | None] = []
        advanced: list[int] = []
        result = predict_file(
            rt,
            source,
            str(tmp_path / "out.parquet"),
            chunk_rows=150,
            progress=advanced.append,
            on_total=totals.append,
        )
        assert (result["rows"], result["rejected"], result["rejects"]) == (600, 0, None)
        assert totals == [600] and sum(advanced) == 600  # a progress bar with a real total
        out = pd.read_parquet(tmp_path / "out.parquet")
        np.testing.assert_allclose(
            out["probability"], rt.model.predict_proba(whole[FEATURES])[:, 1], atol=1e-12
        )


def test_multiclass_and_regression_columns(
    bundles: dict[str, ModelRuntime], tmp_path: Path
) -> None:
    frame = flights_frame(100, seed=13)
    frame.drop(columns=["flight_id"]).to_parquet(tmp_path / "in.parquet")
    multi = bundles["multiclass"]
    predict_file(multi, str(tmp_path / "in.parquet"), str(tmp_path / "m.parquet"))
    out = pd.read_parquet(tmp_path / "m.parquet")
    classes = multi.classes or []
    assert list(out.columns) == [
        "prediction",
        *[f"proba_{c}" for c in classes],
        "model_version",
        "out_of_range",
    ]
    np.testing.assert_allclose(
        out[[f"proba_{c}" for c in classes]].to_numpy(),
        multi.model.predict_proba(frame[FEATURES]),
        atol=1e-12,
    )
    reg = bundles["regression"]
    predict_file(reg, str(tmp_path / "in.parquet"), str(tmp_path / "r.parquet"))
    out = pd.read_parquet(tmp_path / "r.parquet")
    assert list(out.columns) == ["prediction", "model_version", "out_of_range"]
    assert out["model_version"].isna().all()  # an unversioned bundle
    np.testing.assert_allclose(out["prediction"], reg.model.predict(frame[FEATURES]), atol=1e-12)


def test_missing_column_fails_whole_job(rt: ModelRuntime, tmp_path: Path) -> None:
    flights_frame(50).drop(columns=["origin"]).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(BadInput, match="origin") as exc:
        predict_file(rt, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"))
    assert [d["field"] for d in exc.value.details] == ["origin"]  # type: ignore[attr-defined]
    assert files_in(tmp_path) == {"in.parquet"}


def test_missing_input_is_not_found(rt: ModelRuntime, tmp_path: Path) -> None:
    for source in (tmp_path / "nope.parquet", tmp_path / "*.parquet"):
        with pytest.raises(NotFound):
            predict_file(rt, str(source), str(tmp_path / "out.parquet"))


def test_unwritable_output_is_bad_input(rt: ModelRuntime, tmp_path: Path) -> None:
    flights_frame(20).to_parquet(tmp_path / "in.parquet")
    (tmp_path / "a_file").write_text("x")
    for target in (
        tmp_path / "no_dir" / "out.parquet",
        tmp_path / "a_file" / "out.parquet",
        tmp_path / "out.txt",
        tmp_path / "in.parquet",
    ):
        with pytest.raises(BadInput) as exc:
            predict_file(rt, str(tmp_path / "in.parquet"), str(target))
        assert not isinstance(exc.value, NotFound)
    assert files_in(tmp_path) == {"in.parquet", "a_file"}


def test_failure_midway_leaves_nothing_behind(rt: ModelRuntime, tmp_path: Path) -> None:
    dirty_frame().to_parquet(tmp_path / "in.parquet")
    (tmp_path / "out.parquet").write_bytes(b"previous result")

    def interrupt(rows: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_file(
            rt,
            str(tmp_path / "in.parquet"),
            str(tmp_path / "out.parquet"),
            chunk_rows=500,
            progress=interrupt,
        )
    # The earlier output is untouched, and no temporary or rejects file is left.
    assert files_in(tmp_path) == {"in.parquet", "out.parquet"}
    assert (tmp_path / "out.parquet").read_bytes() == b"previous result"


def test_corrupt_input_fails_cleanly(rt: ModelRuntime, tmp_path: Path) -> None:
    (tmp_path / "in.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(BadInput, match="cannot read"):
        predict_file(rt, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"))
    assert files_in(tmp_path) == {"in.parquet"}


def test_stale_rejects_file_is_removed(rt: ModelRuntime, tmp_path: Path) -> None:
    flights_frame(30).to_parquet(tmp_path / "in.parquet")
    (tmp_path / "out.rejects.parquet").write_bytes(b"old rejects")
    result = predict_file(rt, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"))
    assert result["rejects"] is None
    assert files_in(tmp_path) == {"in.parquet", "out.parquet"}


def test_batch_can_write_the_prediction_log(
    bundles: dict[str, ModelRuntime], tmp_path: Path
) -> None:
    from mlcycle.serve import PredictionLog

    frame = dirty_frame(600)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source, index=False)
    log = PredictionLog(tmp_path / "log")
    result = predict_file(
        bundles["multiclass"],
        str(source),
        str(tmp_path / "out.parquet"),
        chunk_rows=250,
        prediction_log=log,
    )
    log.close()
    files = sorted((tmp_path / "log" / "flights").glob("date=*/*.parquet"))
    logged = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert len(logged) == result["predicted"] == result["rows"] - result["rejected"]
    assert set(logged["role"]) == {"batch"}
    assert logged["row_id"].str.startswith("F").all()
    assert logged["probability"].isna().all()
    classes = bundles["multiclass"].classes or []
    proba = logged[[f"proba_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert logged["prediction"].isin([str(c) for c in classes]).all()


def test_onnx_engine_keeps_order_and_matches_the_pipeline(tmp_path: Path) -> None:
    from mlcycle.registry.export import export_bundle

    folder = build_bundle(tmp_path / "b", encoder="ordinal")
    export_bundle(folder, flights_frame(400, seed=3))
    rt = ModelRuntime.load(folder, version=2)
    assert rt.engine == "onnxruntime"
    frame = dirty_frame(12_000, seed=5)
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    # 9,000-row chunks: the first is scored in slices on several workers.
    result = predict_file(
        rt, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"), chunk_rows=9000
    )
    assert result["engine"] == "onnxruntime" and result["rejected"] == 3
    out = pd.read_parquet(tmp_path / "out.parquet")
    rejected = set(pd.read_parquet(tmp_path / "out.rejects.parquet")["flight_id"])
    kept = frame[~frame["flight_id"].isin(rejected)]
    assert out["flight_id"].tolist() == kept["flight_id"].tolist()
    truth = rt.model.predict_proba(kept[FEATURES].reset_index(drop=True))[:, 1]
    assert np.max(np.abs(out["probability"].to_numpy() - truth)) <= 1e-6
    assert (out["prediction"] == (truth > 0.5)).all()
    assert set(out["model_version"]) == {2}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ModelRuntime:
    from mlcycle.registry.export import export_bundle

    folder = build_bundle(tmp_path_factory.mktemp("exported") / "b", encoder="ordinal")
    export_bundle(folder, flights_frame(400, seed=3))
    return ModelRuntime.load(folder, version=2)


def test_engine_choice_decides_whether_onnx_scores(
    exported: ModelRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.parquet"
    frame = dirty_frame(3000, seed=8)
    frame.to_parquet(source, index=False)
    assert exported.onnx is not None and exported.onnx_max_diff is not None

    def run(engine: str, name: str) -> tuple[dict, pd.DataFrame]:  # type: ignore[type-arg]
        out = tmp_path / f"{name}.parquet"
        result = predict_file(exported, str(source), str(out), engine=engine)
        return result, pd.read_parquet(out)

    auto, by_onnx = run("auto", "auto")
    assert auto["engine"] == "onnxruntime" and auto["onnx_max_diff"] <= 1e-6
    sk, by_sklearn = run("sklearn", "sk")
    assert sk["engine"] == "sklearn-compiled"
    kept = frame[frame["flight_id"].isin(by_sklearn["flight_id"])]
    truth = exported.model.predict_proba(kept[FEATURES].reset_index(drop=True))[:, 1]
    assert np.array_equal(by_sklearn["probability"].to_numpy(), truth)  # the estimator itself
    assert np.max(np.abs(by_onnx["probability"].to_numpy() - truth)) <= 1e-6
    # An export further than 1e-6 from scikit-learn scores batches only when asked for.
    monkeypatch.setattr(exported, "onnx_max_diff", 5e-6)
    assert run("auto", "loose")[0]["engine"] == "sklearn-compiled"
    assert run("onnx", "forced")[0]["engine"] == "onnxruntime"


def test_bad_engine_choices_fail_before_writing(rt: ModelRuntime, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    dirty_frame(50).to_parquet(source, index=False)
    with pytest.raises(BadInput, match="unknown engine 'gpu'"):
        predict_file(rt, str(source), str(tmp_path / "a.parquet"), engine="gpu")
    assert rt.onnx is None
    with pytest.raises(BadInput, match="no usable ONNX export") as info:
        predict_file(rt, str(source), str(tmp_path / "b.parquet"), engine="onnx")
    assert "mlcycle models export" in info.value.to_dict()["fix"]
    assert files_in(tmp_path) == {"in.parquet"}


def test_fsspec_inputs(rt: ModelRuntime, tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/batch-{tmp_path.name}"
    frame = dirty_frame()
    for i, part in enumerate((frame.iloc[:1200], frame.iloc[1200:])):
        with fs.open(f"{root}/data/part-{i}.parquet", "wb") as handle:
            part.to_parquet(handle, index=False)
    with fs.open(f"{root}/data/_SUCCESS", "wb") as handle:
        handle.write(b"")
    with fs.open(f"{root}/csv/in.csv", "wb") as handle:
        handle.write(frame.head(50).to_csv(index=False).encode())
    for source in (f"memory://{root}/data", f"memory://{root}/data/*.parquet"):
        result = predict_file(rt, source, str(tmp_path / "out.parquet"), chunk_rows=700)
        assert (result["rows"], result["rejected"]) == (2500, 3)
        assert pd.read_parquet(tmp_path / "out.parquet")["flight_id"].iloc[0] == "F00000"
    result = predict_file(rt, f"memory://{root}/csv/in.csv", str(tmp_path / "out.csv"))
    assert result["rows"] == 50
    with pytest.raises(NotFound):
        predict_file(rt, f"memory://{root}/nothing.parquet", str(tmp_path / "o.parquet"))
    fs.rm(root, recursive=True)


def test_fsspec_output_is_published_only_when_the_job_finished(
    rt: ModelRuntime, tmp_path: Path
) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/out-{tmp_path.name}"
    source = tmp_path / "in.parquet"
    dirty_frame().to_parquet(source, index=False)
    url = f"memory://{root}/scored/july.parquet"
    result = predict_file(rt, str(source), url, chunk_rows=700)
    assert result["output"] == url
    assert result["rejects"] == f"memory://{root}/scored/july.rejects.parquet"
    with fs.open(f"{root}/scored/july.parquet", "rb") as handle:
        scored = pd.read_parquet(handle)
    assert len(scored) == result["predicted"] == 2497
    assert sorted(fs.ls(f"{root}/scored", detail=False)) == [
        f"{root}/scored/july.parquet",
        f"{root}/scored/july.rejects.parquet",
    ]  # no temporary uploads left
    # A clean re-run replaces the output and removes the old rejects file.
    clean = tmp_path / "clean.parquet"
    dirty_frame().iloc[20:70].to_parquet(clean, index=False)
    again = predict_file(rt, str(clean), url)
    assert again["rejects"] is None
    assert fs.ls(f"{root}/scored", detail=False) == [f"{root}/scored/july.parquet"]
    # A failing job publishes nothing and leaves the earlier output as it was.
    broken = tmp_path / "broken.parquet"
    dirty_frame().drop(columns=["carrier"]).to_parquet(broken, index=False)
    with pytest.raises(BadInput, match="carrier"):
        predict_file(rt, str(broken), url)
    with fs.open(f"{root}/scored/july.parquet", "rb") as handle:
        assert len(pd.read_parquet(handle)) == 50
    fs.rm(root, recursive=True)


def test_bad_fsspec_outputs_are_refused(rt: ModelRuntime, tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    dirty_frame(20).to_parquet(source, index=False)
    with pytest.raises(BadInput, match="cannot write nosuch://"):
        predict_file(rt, str(source), "nosuch://bucket/out.parquet")
    with pytest.raises(BadInput, match="names a folder"):
        predict_file(rt, str(source), "memory://bucket/")
    with pytest.raises(BadInput, match=r"output format of memory://bucket/out\.txt"):
        predict_file(rt, str(source), "memory://bucket/out.txt")
    with pytest.raises(BadInput, match="also the input"):
        predict_file(rt, "memory://x/in.parquet", "memory://x/in.parquet")


def test_a_failed_upload_leaves_nothing_behind(
    rt: ModelRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    def refuse(self: MemoryFileSystem, *args: object, **kwargs: object) -> None:
        raise PermissionError("read-only bucket")

    monkeypatch.setattr(MemoryFileSystem, "mv", refuse)
    source = tmp_path / "in.parquet"
    dirty_frame(40).to_parquet(source, index=False)
    root = f"/ro-{tmp_path.name}"
    with pytest.raises(BadInput, match="read-only bucket") as info:
        predict_file(rt, str(source), f"memory://{root}/out.parquet")
    assert "credentials" in info.value.to_dict()["fix"]
    fs = fsspec.filesystem("memory")
    assert not fs.exists(root) or fs.ls(root, detail=False) == []
