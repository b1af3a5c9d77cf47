"""Fast paths, ONNX export parity, swaps under load, canary, shadow, tokens, metrics and the
prediction log, against real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serve_fixtures import FEATURES, build_bundle, flights_frame, good_record, live_server
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings

from mlcycle.errors import BadInput
from mlcycle.registry.export import export_bundle
from mlcycle.serve import ModelRuntime, PredictionLog, ServeSettings, create_app


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("versions")
    return {v: build_bundle(root / f"v{v}", encoder="ordinal", seed=v, n=800) for v in (1, 2)}


def read_log(root: Path) -> pd.DataFrame:
    files = sorted(root.rglob("*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


# --- the compiled path and ONNX -----------------------------------------------------------


def test_compiled_path_equals_pipeline(bundles: dict[int, Path]) -> None:
    rt = ModelRuntime.load(bundles[1], 1)
    assert rt.engine == "sklearn-compiled"
    frame = flights_frame(600, seed=9)
    records = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in frame[FEATURES].astype(object).to_dict("records")
    ]
    matrix = rt.encode_records(records)
    assert matrix is not None
    _, proba = rt.predict_matrix(matrix)
    expected = rt.model.predict_proba(rt.validate_records(records))
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-9)
    # Anything unusual goes to the generic path, which explains it.
    assert rt.encode_records([{**records[0], "carrier": "ZZ"}]) is None
    assert rt.encode_records([{**records[0], "distance": "far"}]) is None
    assert rt.encode_records([{k: v for k, v in records[0].items() if k != "origin"}]) is None


def test_onehot_pipeline_compiles_too(tmp_path: Path) -> None:
    rt = ModelRuntime.load(build_bundle(tmp_path / "b", task="multiclass"), 1)
    assert rt.engine == "sklearn-compiled"
    records = [good_record(i) for i in range(50)] + [{**good_record(1), "origin": None}]
    matrix = rt.encode_records(records)
    assert matrix is not None
    _, proba = rt.predict_matrix(matrix)
    np.testing.assert_allclose(
        proba, rt.model.predict_proba(rt.validate_records(records)), rtol=0, atol=1e-9
    )


def test_onnx_export_parity_and_runtime(bundles: dict[int, Path], tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    for f in bundles[1].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    report = export_bundle(folder, flights_frame(400, seed=3))
    assert report["passed"] and report["label_agreement"] == 1.0
    assert report["max_abs_diff"] <= 1e-5
    assert {"model.onnx", "manifest.json", "parity.json", "schema.json"} <= {
        p.name for p in (folder / "onnx").iterdir()
    }
    rt = ModelRuntime.load(folder, 1)
    assert rt.engine == "onnxruntime"
    records = [good_record(i) for i in range(40)]
    _, proba = rt.predict_matrix(rt.encode_records(records))  # type: ignore[arg-type]
    expected = rt.model.predict_proba(rt.validate_records(records))
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-5)


def test_export_refuses_unconvertible_model(tmp_path: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    folder = build_bundle(tmp_path / "b", encoder="ordinal")
    model = joblib.load(folder / "model.joblib")
    frame = flights_frame(300).dropna()
    bad = Pipeline([model.steps[0], ("model", _Odd())]).fit(frame[FEATURES], frame["delayed"])
    joblib.dump(bad, folder / "model.joblib")
    with pytest.raises(BadInput, match="convert"):
        export_bundle(folder, frame)
    del KNeighborsClassifier


class _Odd:
    """A classifier skl2onnx has never heard of."""

    def fit(self, x: Any, y: Any) -> _Odd:
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        return np.full((len(x), 2), 0.5)

    def predict(self, x: Any) -> np.ndarray:
        return np.zeros(len(x), dtype=bool)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def set_params(self, **params: Any) -> _Odd:
        return self


# --- swaps, canary, shadow --------------------------------------------------------------


def test_swap_under_load_fails_no_request(bundles: dict[int, Path], tmp_path: Path) -> None:
    target = {"champion": (1, bundles[1])}
    log = PredictionLog(tmp_path / "log")
    app = create_app(
        ModelRuntime.load(bundles[1], 1),
        ServeSettings(poll_seconds=0.05),
        resolver=lambda role: target.get(role),
        prediction_log=log,
    )
    results: list[tuple[int, Any]] = []
    stop = threading.Event()
    with live_server(app) as url:

        def load() -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                i = 0
                while not stop.is_set():
                    r = c.post("/predict", json=[good_record(i)])
                    results.append((r.status_code, r.json().get("model_version")))
                    i += 1

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        target["champion"] = (2, bundles[2])
        deadline = time.monotonic() + 20
        while not any(v == 2 for _, v in results[-20:]) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        metrics = httpx.get(url + "/metrics").text
    codes = {code for code, _ in results}
    assert codes == {200}, codes
    versions = [v for _, v in results]
    assert versions[0] == 1 and versions[-1] == 2
    assert "mlcycle_model_swaps_total 1" in metrics
    logged = read_log(tmp_path / "log")
    assert len(logged) == len(results)
    assert set(logged["model_version"]) == {1, 2}


def test_canary_and_shadow(bundles: dict[int, Path], tmp_path: Path) -> None:
    targets = {"champion": (1, bundles[1]), "challenger": (2, bundles[2])}
    log = PredictionLog(tmp_path / "log")
    app = create_app(
        ModelRuntime.load(bundles[1], 1),
        ServeSettings(poll_seconds=0, canary=0.3, admin_token="s3cret"),
        resolver=targets.get,
        prediction_log=log,
    )
    admin = {"Authorization": "Bearer s3cret"}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        versions = [
            c.post("/predict", json=[good_record(i)]).json()["model_version"] for i in range(400)
        ]
        share = versions.count(2) / len(versions)
        assert 0.2 < share < 0.4, share
        r = c.post("/admin/traffic", json={"canary": 0, "shadow": True}, headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["shadow"] is True and r.json()["challenger_version"] == 2
        shadowed = [c.post("/predict", json=[good_record(i)]).json() for i in range(30)]
        assert {s["model_version"] for s in shadowed} == {1}
        time.sleep(0.3)
    logged = read_log(tmp_path / "log")
    roles = logged.groupby("role").size().to_dict()
    assert roles["champion"] == versions.count(1) + 30
    assert roles["challenger"] == versions.count(2)
    assert roles["shadow"] == 30
    shadow_ids = set(logged.loc[logged.role == "shadow", "request_id"])
    assert shadow_ids == {s["request_id"] for s in shadowed}
    assert (logged.loc[logged.role == "shadow", "model_version"] == 2).all()


def test_log_columns_follow_the_contract(bundles: dict[int, Path], tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log")
    app = create_app(ModelRuntime.load(bundles[1], 7), prediction_log=log)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        rows = [{**good_record(i), "flight_id": f"F{i}"} for i in range(3)]
        c.post("/predict", json=rows)
        c.post("/predict", json=[{**good_record(1), "dep_delay": "12"}])  # 422: not logged
        # An int where a float is expected and a null take the generic path; logged the same.
        generic = c.post("/predict", json=[{**good_record(2), "weekend": 1, "origin": None}])
    files = list((tmp_path / "log" / "flights").glob("date=*/*.parquet"))
    assert files
    table = pa.concat_tables([pq.read_table(f) for f in files])
    assert table.schema.names == [
        "request_id",
        "ts",
        "model",
        "model_version",
        "role",
        *FEATURES,
        "row_id",
        "prediction",
        "probability",
        "out_of_range",  # null here: every value is inside its training range
        "latency_ms",  # the request's model time, the same on each of its rows
    ]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    frame = table.to_pandas().sort_values("ts", kind="stable")
    assert frame["row_id"].tolist()[:3] == ["F0", "F1", "F2"]
    # No id column in the input: the row is still addressable, as request id + index.
    assert frame["row_id"].tolist()[3] == f"{generic.json()['request_id']}:0"
    assert frame["prediction"].isin(["True", "False"]).all()
    assert frame["model_version"].tolist() == [7, 7, 7, 7]
    assert frame["weekend"].tolist()[-1] is True
    assert frame["origin"].isna().tolist() == [False, False, False, True]
    latency = frame["latency_ms"].tolist()
    assert all(value > 0 for value in latency)
    assert latency[0] == latency[1] == latency[2]  # one request, one model time


def test_v2_infer_rows_are_logged_with_row_ids(bundles: dict[int, Path], tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "log")
    app = create_app(ModelRuntime.load(bundles[1], 3), prediction_log=log)
    rows = [good_record(i) for i in range(3)]

    types = {"dep_delay": "FP64", "distance": "INT64", "carrier": "BYTES", "origin": "BYTES"}

    def tensors(with_ids: bool) -> dict[str, Any]:
        inputs = [
            {
                "name": f,
                "shape": [3],
                "datatype": types.get(f, "BOOL"),
                "data": [r[f] for r in rows],
            }
            for f in FEATURES
        ]
        if with_ids:
            ids = ["A", None, "C"]
            inputs.append({"name": "flight_id", "shape": [3], "datatype": "BYTES", "data": ids})
        return {"inputs": inputs}

    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        named = c.post("/v2/models/flights/infer", json=tensors(True))
        bare = c.post("/v2/models/flights/infer", json=tensors(False))
        assert named.status_code == 200 and bare.status_code == 200, (named.text, bare.text)
    frame = read_log(tmp_path / "log")
    by_request = frame.groupby("request_id")["row_id"].apply(list).to_dict()
    named_id = named.json()["parameters"]["request_id"]
    bare_id = bare.json()["parameters"]["request_id"]
    # The id column when sent (a null id falls back to request id + index), else rid:index.
    assert by_request[named_id] == ["A", f"{named_id}:1", "C"]
    assert by_request[bare_id] == [f"{bare_id}:{i}" for i in range(3)]
    assert frame["row_id"].notna().all()


def test_app_freezes_the_heap_at_start_and_can_be_told_not_to(bundles: dict[int, Path]) -> None:
    import gc

    from mlcycle.serve.model import GEN0_THRESHOLD

    rt = ModelRuntime.load(bundles[1], 1)
    gc.unfreeze()
    with live_server(create_app(rt, ServeSettings(tune_gc=False))) as url:
        assert httpx.get(url + "/v2/health/ready").status_code == 200
        assert gc.get_freeze_count() == 0
    with live_server(create_app(rt)) as url:
        assert httpx.get(url + "/v2/health/ready").status_code == 200
        # The model and everything imported are out of the collector's reach.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == GEN0_THRESHOLD


def test_a_stopped_server_cancels_its_pending_refreeze(
    bundles: dict[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # After a swap the app re-freezes the heap a few seconds later; a server that
    # stopped in between must not touch the process's collector any more (another
    # app in the same process froze it meanwhile, or an embedding program unfroze it).
    import asyncio
    import gc

    from mlcycle.serve.http import deploy

    calls: list[float] = []
    monkeypatch.setattr(deploy, "refreeze", lambda: calls.append(time.monotonic()))
    monkeypatch.setattr(deploy, "_REFREEZE_AFTER_SECONDS", 0.3)
    runtime = ModelRuntime.load(bundles[1], 1, warmup=False)
    gc.freeze()
    swapper = deploy.Swapper(
        deploy.Deployment.start(runtime), resolver=lambda role: (2, bundles[2])
    )
    assert swapper.check()["champion_version"] == 2
    asyncio.run(swapper.stop())
    time.sleep(0.6)
    assert calls == []
    # Still running: the re-freeze happens, once for two quick swaps.
    swapper = deploy.Swapper(
        deploy.Deployment.start(runtime), resolver=lambda role: (2, bundles[2])
    )
    swapper.check()
    swapper.resolver = lambda role: (1, bundles[1])
    swapper.check()
    time.sleep(0.6)
    assert len(calls) == 1


def test_log_queue_full_drops_and_counts(tmp_path: Path, bundles: dict[int, Path]) -> None:
    from mlcycle.serve.predlog import LogRows, ModelInfo, now

    rt = ModelRuntime.load(bundles[1], 1)
    log = PredictionLog(tmp_path / "log", max_queue_rows=5, flush_seconds=60)
    entry = LogRows(
        ModelInfo.of(rt),
        "batch",
        "r",
        now(),
        [True] * 3,
        np.full((3, 2), 0.5),
        records=[good_record(0)] * 3,
    )
    assert log.submit(entry) and not log.submit(entry)
    assert log.dropped == 3
    log.close()
    assert log.written == 3
    assert not log.submit(entry)


# --- tokens and metrics -----------------------------------------------------------------


def test_tokens(bundles: dict[int, Path]) -> None:
    rt = ModelRuntime.load(bundles[1], 1)
    open_app = create_app(rt)
    with live_server(open_app) as url:
        assert httpx.post(url + "/admin/reload").status_code == 403
        assert httpx.get(url + "/admin/traffic").status_code == 403
    app = create_app(rt, ServeSettings(admin_token="adm", predict_token="prd"))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as c:
        assert c.post("/predict", json=[good_record(0)]).status_code == 401
        bad = c.post("/predict", json=[good_record(0)], headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401 and "token" in bad.json()["error"]
        ok = c.post("/predict", json=[good_record(0)], headers={"Authorization": "Bearer prd"})
        assert ok.status_code == 200
        assert c.get("/admin/traffic", headers={"Authorization": "Bearer prd"}).status_code == 401
        traffic = c.get("/admin/traffic", headers={"Authorization": "Bearer adm"})
        assert traffic.json()["champion_version"] == 1
        # No resolver (a bundle folder): nothing to reload, no challenger to route to.
        h = {"Authorization": "Bearer adm"}
        assert c.post("/admin/reload", headers=h).status_code == 422
        assert c.post("/admin/traffic", json={"canary": 0.5}, headers=h).status_code == 422
        assert c.post("/admin/traffic", json={"canary": 2}, headers=h).status_code == 422
        assert c.post("/admin/traffic", json={"bogus": 1}, headers=h).status_code == 422
        assert c.post("/admin/traffic", content=b"{", headers=h).status_code == 400
        assert c.get("/v2/health/ready").status_code == 200  # health needs no token
        metrics = c.get("/metrics").text
    assert 'mlcycle_requests_total{route="/predict",code="401"} 2' in metrics
    assert 'mlcycle_requests_total{route="/predict",code="200"} 1' in metrics
    assert "mlcycle_request_duration_seconds_bucket" in metrics
    assert "mlcycle_batch_rows_count" in metrics
    assert 'mlcycle_model_version{role="champion"} 1' in metrics


# --- graceful shutdown of a real `mlcycle serve` process -------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served_process(bundles: dict[int, Path], tmp_path: Path) -> Iterator[tuple[str, Any, Path]]:
    port = _free_port()
    root = tmp_path / "predictions"
    env = {**os.environ, "MLCYCLE_PREDICTIONS_URL": str(root)}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlcycle"),
            "serve",
            str(bundles[1]),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v2/health/ready").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield url, proc, root
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_sigterm_under_load_loses_no_log_record(served_process: tuple[str, Any, Path]) -> None:
    url, proc, root = served_process
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            i = 0
            while not stop.is_set():
                try:
                    r = c.post("/predict", json=[good_record(i), good_record(i + 1)])
                except httpx.HTTPError:
                    return  # the server went away
                if r.status_code == 200:
                    answered.append(r.json()["request_id"])
                i += 1

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(answered) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal after its graceful shutdown: -15 is a clean exit here.
    assert proc.wait(30) in (0, -signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join()
    logged = read_log(root)
    assert len(answered) > 50
    assert set(answered) <= set(logged["request_id"])
    assert len(logged) == 2 * len(set(logged["request_id"]))
