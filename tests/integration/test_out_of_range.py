"""Numbers outside the training range: flagged (scored, warned, counted, logged) or rejected.

The bundle's contract gives ``distance`` the range [50, 5000] and ``dep_delay``
[-100, 300] (``serve_fixtures.schema``). Before this policy existed a row with
``distance: -500000`` was scored in silence, like one in range.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from serve_fixtures import FEATURES, build_bundle, flights_frame, good_record, live_server
from serve_fixtures import restore_gc as restore_gc  # autouse: undo the app's GC settings

from mlcycle.artifacts import BundleMeta
from mlcycle.serve import ModelRuntime, PredictionLog, ServeSettings, create_app, predict_file

JSON = {"content-type": "application/json"}
DATATYPES = {"dep_delay": "FP64", "distance": "INT64", "weekend": "BOOL"}
FAR = -500_000  # far outside distance's [50, 5000]


def with_policy(folder: Path, policy: str = "flag", seasonal: list[str] | None = None) -> Path:
    """Rewrite the bundle's meta.json with an out-of-range policy (as the gate step writes it)."""
    meta = BundleMeta.model_validate_json((folder / "meta.json").read_text())
    meta = meta.model_copy(update={"out_of_range": policy, "seasonal": seasonal or []})
    (folder / "meta.json").write_text(meta.model_dump_json(indent=2))
    return folder


@pytest.fixture(scope="module")
def flag_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_policy(build_bundle(tmp_path_factory.mktemp("flag")), "flag")


@pytest.fixture(scope="module")
def reject_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_policy(build_bundle(tmp_path_factory.mktemp("reject")), "reject")


@pytest.fixture(scope="module")
def flagged(flag_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A live server on the flag bundle, writing a prediction log."""
    root = tmp_path_factory.mktemp("log")
    log = PredictionLog(str(root), flush_seconds=0.1)
    app = create_app(ModelRuntime.load(flag_bundle, version=1), prediction_log=log)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        yield c, log, root


@pytest.fixture(scope="module")
def rejecting(reject_bundle: Path) -> Iterator[httpx.Client]:
    app = create_app(ModelRuntime.load(reject_bundle, version=1))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        yield c


def infer_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": DATATYPES.get(name, "BYTES"),
                "data": [r[name] for r in records],
            }
            for name in FEATURES
        ]
    }


def metric(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    assert match, f"{sample} missing from:\n{text}"
    return float(match.group(1))


# --- flag -------------------------------------------------------------------------------


def test_flag_scores_the_row_and_warns_naming_column_value_and_range(flagged: Any) -> None:
    client, _, _ = flagged
    rows = [good_record(1), {**good_record(2), "distance": FAR}, good_record(3)]
    body = client.post("/predict", json=rows).json()
    assert len(body["predictions"]) == 3
    assert body["warnings"][0] == [] and body["warnings"][2] == []
    (warning,) = body["warnings"][1]
    assert warning["column"] == "distance" and warning["value"] == FAR
    assert (warning["min"], warning["max"]) == (50, 5000)
    assert "distance = -500000" in warning["message"] and "[50, 5000]" in warning["message"]


def test_rows_in_range_keep_the_response_shape(flagged: Any) -> None:
    client, _, _ = flagged
    body = client.post("/predict", json=[good_record(1), good_record(2)]).json()
    assert "warnings" not in body
    assert set(body) == {
        "model",
        "model_version",
        "request_id",
        "predictions",
        "probabilities",
        "classes",
    }


def test_boundaries_and_missing_values_are_in_range(flagged: Any) -> None:
    client, _, _ = flagged
    rows = [
        {**good_record(1), "distance": 50, "dep_delay": 300.0},  # the bounds themselves
        {**good_record(2), "dep_delay": None},  # missing is not out of range
    ]
    assert "warnings" not in client.post("/predict", json=rows).json()
    above = client.post("/predict", json=[{**good_record(1), "dep_delay": 300.5}]).json()
    assert above["warnings"][0][0]["column"] == "dep_delay"


def test_the_generic_path_flags_too(flag_bundle: Path) -> None:
    """Records the compiled path does not take (here: no plan at all) are checked on the frame."""
    runtime = ModelRuntime.load(flag_bundle, version=1)
    runtime.plan = None
    app = create_app(runtime)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        rows = [{**good_record(1), "dep_delay": None}, {**good_record(2), "distance": 9000}]
        warnings = c.post("/predict", json=rows).json()["warnings"]
    assert warnings[0] == [] and warnings[1][0]["column"] == "distance"  # null: not outside
    assert warnings[1][0]["value"] == 9000


def test_v2_infer_carries_warnings_as_a_bytes_output(flagged: Any) -> None:
    client, _, _ = flagged
    rows = [good_record(1), {**good_record(2), "distance": FAR}]
    body = client.post("/v2/models/flights/infer", json=infer_body(rows)).json()
    outputs = {o["name"]: o for o in body["outputs"]}
    warnings = outputs["warnings"]
    assert warnings["datatype"] == "BYTES" and warnings["shape"] == [2]
    assert json.loads(warnings["data"][0]) == []
    assert json.loads(warnings["data"][1])[0]["column"] == "distance"
    assert body["parameters"]["out_of_range_rows"] == 1
    clean = client.post("/v2/models/flights/infer", json=infer_body(rows[:1])).json()
    assert [o["name"] for o in clean["outputs"]] == ["predictions", "probabilities"]
    assert "out_of_range_rows" not in clean["parameters"]


def test_metadata_states_the_policy_and_ranges(flagged: Any) -> None:
    client, _, _ = flagged
    parameters = client.get("/v2/models/flights").json()["parameters"]
    assert parameters["out_of_range"] == "flag"
    assert parameters["ranges"]["distance"] == [50, 5000]
    assert parameters["seasonal"] == []


def test_metrics_count_values_outside_per_column(flag_bundle: Path) -> None:
    app = create_app(ModelRuntime.load(flag_bundle, version=1))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        c.post("/predict", json=[{**good_record(1), "distance": FAR, "dep_delay": 999.0}])
        c.post("/predict", json=[{**good_record(2), "distance": 6000}, good_record(3)])
        c.post("/predict", json=[good_record(4)])
        text = c.get("/metrics").text
    assert metric(text, 'mlcycle_out_of_range_total{column="distance"}') == 2
    assert metric(text, 'mlcycle_out_of_range_total{column="dep_delay"}') == 1


def test_the_prediction_log_marks_the_row(flagged: Any) -> None:
    from mlcycle import predlog

    client, log, root = flagged
    rows = [{**good_record(5), "distance": FAR, "dep_delay": 400.0}, good_record(6)]
    rid = client.post("/predict", json=rows).json()["request_id"]
    log.flush()
    frame = predlog.read_files(str(root), predlog.list_files(str(root), "flights"))
    mine = frame[frame.request_id == rid].sort_values("row_id")
    assert mine["out_of_range"].tolist()[0] == "dep_delay,distance"
    assert pd.isna(mine["out_of_range"].tolist()[1])


def test_old_log_files_without_the_column_still_read(tmp_path: Path) -> None:
    from mlcycle import predlog

    old = pd.DataFrame(
        {
            "request_id": ["r"],
            "ts": [pd.Timestamp("2026-01-01", tz="UTC")],
            "model": ["flights"],
            "model_version": [1],
            "role": ["champion"],
            "row_id": ["r:0"],
            "prediction": ["True"],
        }
    )
    predlog.write_predictions(str(tmp_path), "flights", old)
    files = predlog.list_files(str(tmp_path), "flights")
    assert predlog.read_files(str(tmp_path), files)["out_of_range"].isna().all()
    picked = predlog.read_files(str(tmp_path), files, columns=["row_id", "out_of_range"])
    assert list(picked.columns) == ["row_id", "out_of_range"]
    with pytest.raises(Exception, match="cannot be read"):
        predlog.read_files(str(tmp_path), files, columns=["row_id", "not_a_column"])


# --- reject -----------------------------------------------------------------------------


def test_reject_answers_422_naming_column_value_and_range(rejecting: httpx.Client) -> None:
    response = rejecting.post(
        "/predict", json=[good_record(1), {**good_record(2), "distance": FAR}]
    )
    assert response.status_code == 422
    body = response.json()
    (detail,) = body["details"]
    assert detail["field"] == "distance"
    assert "-500000" in detail["error"] and "[50, 5000]" in detail["error"]
    assert "row 1" in detail["error"]
    assert rejecting.post("/predict", json=[good_record(1)]).status_code == 200


def test_reject_over_v2_infer(rejecting: httpx.Client) -> None:
    rows = [{**good_record(2), "dep_delay": -101.0}]
    response = rejecting.post("/v2/models/flights/infer", json=infer_body(rows))
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "dep_delay"
    assert rejecting.get("/v2/models/flights").json()["parameters"]["out_of_range"] == "reject"


def test_an_override_replaces_the_bundles_policy(flag_bundle: Path) -> None:
    runtime = ModelRuntime.load(flag_bundle, version=1, out_of_range="reject")
    assert runtime.meta.out_of_range == "flag" and runtime.out_of_range == "reject"
    app = create_app(runtime, ServeSettings(out_of_range="reject"))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        bad = c.post("/predict", json=[{**good_record(2), "distance": FAR}])
        assert bad.status_code == 422
        assert c.get("/v2/models/flights").json()["parameters"]["out_of_range"] == "reject"
    with pytest.raises(Exception, match="out-of-range policy"):
        ModelRuntime.load(flag_bundle, out_of_range="ignore")


def test_a_version_swapped_in_keeps_the_override(flag_bundle: Path, tmp_path: Path) -> None:
    newer = with_policy(build_bundle(tmp_path / "v2", seed=1), "flag")
    runtime = ModelRuntime.load(flag_bundle, version=1, out_of_range="reject")
    app = create_app(
        runtime,
        ServeSettings(out_of_range="reject", poll_seconds=0),
        resolver=lambda role: (2, newer) if role == "champion" else None,
    )
    assert app.state.swapper.check()["champion_version"] == 2
    swapped = app.state.swapper.deployment.champion.runtime
    assert swapped.version == 2 and swapped.out_of_range == "reject"


def test_seasonal_columns_are_never_flagged_or_rejected(tmp_path: Path) -> None:
    folder = with_policy(build_bundle(tmp_path / "b"), "reject", seasonal=["distance"])
    runtime = ModelRuntime.load(folder, version=1)
    assert "distance" not in runtime.ranges and "dep_delay" in runtime.ranges
    app = create_app(runtime)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        ok = c.post("/predict", json=[{**good_record(2), "distance": FAR}])
        assert ok.status_code == 200 and "warnings" not in ok.json()
        assert c.post("/predict", json=[{**good_record(2), "dep_delay": 999.0}]).status_code == 422
        assert c.get("/v2/models/flights").json()["parameters"]["seasonal"] == ["distance"]


def test_the_profile_gives_the_training_range(tmp_path: Path) -> None:
    """With a profile.json (every bundle the gate writes has one) its min/max are the range:
    the rows the model was built from, as monitoring checks them; the contract is the fallback."""
    from mlcycle.artifacts import ColumnProfile, Profile

    folder = with_policy(build_bundle(tmp_path / "b"), "flag")
    profile = Profile(
        rows=1500,
        columns=[
            ColumnProfile(name="distance", kind="numeric", count=1500, nulls=0, min=100, max=3000)
        ],
    )
    (folder / "profile.json").write_text(profile.model_dump_json())
    runtime = ModelRuntime.load(folder, version=1)
    assert runtime.ranges["distance"] == (100.0, 3000.0)
    assert runtime.ranges["dep_delay"] == (-100.0, 300.0)  # not profiled: the contract's
    app = create_app(runtime)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10, headers=JSON) as c:
        body = c.post("/predict", json=[{**good_record(1), "distance": 4000}]).json()
    assert body["warnings"][0][0]["max"] == 3000


# --- batch ------------------------------------------------------------------------------


def batch_input(tmp_path: Path) -> Path:
    frame = flights_frame(300, seed=5)[["flight_id", *FEATURES]]
    frame.loc[[3, 7], "distance"] = [FAR, 99_999]
    frame.loc[7, "dep_delay"] = 1000.0
    path = tmp_path / "in.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_batch_flag_scores_and_names_the_columns(flag_bundle: Path, tmp_path: Path) -> None:
    runtime = ModelRuntime.load(flag_bundle, version=1)
    result = predict_file(runtime, str(batch_input(tmp_path)), str(tmp_path / "out.parquet"))
    assert result["rejected"] == 0 and result["out_of_range"] == {"distance": 2, "dep_delay": 1}
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out.loc[3, "out_of_range"] == "distance"
    assert out.loc[7, "out_of_range"] == "dep_delay,distance"
    assert out["out_of_range"].isna().sum() == 298


def test_batch_reject_sends_the_rows_to_the_rejects_file(
    reject_bundle: Path, tmp_path: Path
) -> None:
    runtime = ModelRuntime.load(reject_bundle, version=1)
    result = predict_file(runtime, str(batch_input(tmp_path)), str(tmp_path / "out.parquet"))
    assert result["rejected"] == 2 and result["predicted"] == 298
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert "out_of_range" not in out.columns
    rejects = pd.read_parquet(result["rejects"])
    reasons = dict(zip(rejects["flight_id"], rejects["reason"], strict=True))
    assert "distance: -500000 is outside the training range [50, 5000]" in reasons["F00003"]
    assert "dep_delay" in reasons["F00007"]


def test_batch_log_marks_the_rows(flag_bundle: Path, tmp_path: Path) -> None:
    from mlcycle import predlog

    log = PredictionLog(str(tmp_path / "log"))
    runtime = ModelRuntime.load(flag_bundle, version=1)
    predict_file(
        runtime, str(batch_input(tmp_path)), str(tmp_path / "o.parquet"), prediction_log=log
    )
    log.close()
    root = str(tmp_path / "log")
    frame = predlog.read_files(root, predlog.list_files(root, "flights")).set_index("row_id")
    assert frame.loc["F00007", "out_of_range"] == "dep_delay,distance"
    assert frame["out_of_range"].notna().sum() == 2


# --- the model card ---------------------------------------------------------------------


def test_the_model_card_states_the_bundles_policy() -> None:
    from mlcycle.registry.bundle import model_card

    evaluation, blessing, problem = card_inputs()
    base = BundleMeta.model_validate_json(_meta_json())  # a bundle written with the default
    flag = model_card(base, evaluation, blessing, problem)
    assert "outside the training ranges are scored and flagged" in flag
    assert "outside the training ranges are rejected" not in flag
    reject = base.model_copy(update={"out_of_range": "reject", "seasonal": ["month"]})
    text = model_card(reject, evaluation, blessing, problem)
    assert "outside the training ranges are rejected" in text
    assert "seasonal features (month) are never range-checked" in text


def _meta_json() -> str:
    meta = BundleMeta(
        name="flights",
        task="binary",
        target="delayed",
        positive_label=True,
        classes=[False, True],
        features=["distance", "month"],
        dataset_id="d",
        model_artifact_id="m",
        spec_hash="0" * 64,
        mlcycle_version="0",
        created_at="2026-01-01T00:00:00Z",
    )
    return meta.model_dump_json()


def card_inputs() -> tuple[Any, Any, Any]:
    from mlcycle.artifacts import Blessing, Evaluation
    from mlcycle.spec import Problem

    evaluation = Evaluation.model_construct(
        rows=100,
        confidence=0.95,
        n_boot=10,
        primary_metric="roc_auc",
        metrics={"candidate": {"roc_auc": 0.8}},
        intervals={},
        benefit=None,
        slices=[],
    )
    blessing = Blessing.model_construct(blessed=True, checks=[])
    problem = Problem.model_construct(
        target="delayed", task="binary", positive_label=True, latency_budget_ms=50
    )
    return evaluation, blessing, problem


# --- several workers --------------------------------------------------------------------


def test_out_of_range_counts_add_up_across_two_workers(tmp_path: Path) -> None:
    from test_serve_workers import MLCYCLE, _both_listening, _free_port

    bundle = with_policy(build_bundle(tmp_path / "bundle", encoder="ordinal"), "flag")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    proc = subprocess.Popen(
        [MLCYCLE, "serve", str(bundle), "--workers", "2", "--port", str(port), "--no-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _both_listening(port, proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}") for _ in range(16)]
        try:
            for i in range(32):
                row = {**good_record(i % 16), "distance": FAR} if i % 2 else good_record(i % 16)
                assert clients[i % 16].post("/predict", json=[row]).status_code == 200
        finally:
            for client in clients:
                client.close()
        for _ in range(10):  # a fresh connection each time: either worker answers
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            assert metric(text, 'mlcycle_out_of_range_total{column="distance"}') == 16
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert "out-of-range inputs: flag (the bundle's policy" in stderr


def test_an_unknown_policy_is_refused_before_anything_loads(flag_bundle: Path) -> None:
    from test_serve_workers import MLCYCLE

    for command in (
        ["serve", str(flag_bundle)],
        ["predict", str(flag_bundle), "-i", "x", "-o", "y"],
    ):
        done = subprocess.run(
            [MLCYCLE, *command, "--out-of-range", "ignore"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "--out-of-range 'ignore' is not a policy" in done.stderr
