"""The whole lifecycle through the real `mlcycle` command on a slice of the flights data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
# One flight with exactly the example's features (what is known at departure).
ROW = {
    "dep_delay": 42.0,
    "hour": 17,
    "day_of_week": 6,
    "carrier": "UA",
    "origin": "EWR",
    "dest": "ORD",
    "distance": 719,
}


def cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    result = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, text=True, capture_output=True, env=env, timeout=600, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"mlcycle {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flights project (5% of the rows) made once by `mlcycle init`."""
    root = tmp_path_factory.mktemp("template")
    cli(root, "init", "proj", "--example", "flights", "--sample", "0.05")
    return root / "proj"


@pytest.fixture(scope="module")
def project(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template after one full `mlcycle run`."""
    target = tmp_path_factory.mktemp("lifecycle") / "proj"
    shutil.copytree(template, target)
    cli(target, "run")
    return target


@pytest.fixture
def fresh(template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "proj"
    shutil.copytree(template, target)
    return target


def test_run_registers_a_champion_and_a_second_run_is_all_cache(project: Path) -> None:
    shown = json.loads(cli(project, "models", "show", "flights@champion", "--json").stdout)
    assert shown["version"] == 1 and shown["blessed"] and "champion" in shown["aliases"]
    assert shown["metrics"]["roc_auc"] > shown["baseline_metrics"]["roc_auc"] + 0.05
    for leaky in ("arr_delay", "arr_time", "air_time"):
        assert leaky not in shown["features"]
    # The gate left both fast paths, each within its parity bound.
    native, onnx = shown["fast_paths"]["native"], shown["fast_paths"]["onnx"]
    assert native["max_abs_diff"] <= 1e-9 and native["platform"].startswith("linux-")
    assert onnx["max_abs_diff"] <= 1e-5 and onnx["platform"] is None
    shown_text = cli(project, "models", "show", "flights@champion").stdout
    assert "fast paths: onnx (max |Δ|" in shown_text and "native (max |Δ|" in shown_text
    again = json.loads(cli(project, "run", "--json").stdout)
    assert again["status"] == "succeeded"
    assert {s["status"] for s in again["steps"]} == {"cached"}
    assert (project / "schema.yaml").is_file()
    assert (project / ".mlcycle" / "mlcycle.db").is_file()


def test_lineage_reaches_the_dataset(project: Path) -> None:
    tree = json.loads(cli(project, "lineage", "models:/flights@champion", "--json").stdout)
    kinds: set[str] = set()

    def walk(node: dict) -> None:
        kinds.add(node["kind"])
        for child in node.get("inputs", []):
            walk(child)

    walk(tree)
    assert {"bundle", "model", "evaluation", "blessing", "splits", "dataset"} <= kinds
    history = json.loads(cli(project, "models", "history", "flights", "--json").stdout)
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, 1)]


def test_batch_predict_and_drift(project: Path) -> None:
    out = project / "preds.parquet"
    result = json.loads(
        cli(
            project,
            "predict",
            "models:/flights@champion",
            "--input",
            "data/flights_future.parquet",
            "--output",
            str(out),
            "--json",
        ).stdout
    )
    future = pd.read_parquet(project / "data" / "flights_future.parquet")
    preds = pd.read_parquet(out)
    assert result["rows"] == len(future)
    assert result["predicted"] + result["rejected"] == len(future)
    assert len(preds) == result["predicted"]
    if result["rejected"]:  # e.g. a destination never seen in January–June
        rejects = pd.read_parquet(result["rejects"])
        assert rejects["reason"].str.len().min() > 0
    assert "flight_id" in preds.columns
    # The gate compiled the champion (a HistGradientBoosting) to native code; it
    # answers as scikit-learn does.
    assert result["engine"] == "native"
    reference = project / "preds-sklearn.parquet"
    cli(
        project,
        *("predict", "models:/flights@champion", "-i", "data/flights_future.parquet"),
        *("-o", str(reference), "--engine", "sklearn"),
    )
    by_sklearn = pd.read_parquet(reference)
    assert preds["prediction"].tolist() == by_sklearn["prediction"].tolist()
    assert (preds["probability"] - by_sklearn["probability"]).abs().max() <= 1e-9
    bad = cli(
        project,
        *("predict", "models:/flights@champion", "-i", "data/flights_future.parquet"),
        *("-o", str(project / "other.parquet"), "--engine", "gpu"),
        check=False,
    )
    assert bad.returncode == 2 and "unknown engine 'gpu'" in bad.stderr
    assert not (project / "other.parquet").exists()
    drift = json.loads(
        cli(
            project, "monitor", "drift", "--current", "data/flights_future.parquet", "--json"
        ).stdout
    )
    assert {"feature", "test", "statistic", "p_value", "threshold", "drift"} <= set(drift[0])
    by_feature = {d["feature"]: d for d in drift}
    assert set(by_feature) == set(ROW)  # month and day are data, not features
    assert by_feature["origin"]["drift"] is False  # the three airports keep their shares


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    proc = subprocess.Popen(
        [MLCYCLE, "serve", "models:/flights@champion", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start: {proc.communicate()}")
        time.sleep(0.2)
    yield base
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_serve_answers_and_rejects_bad_requests(server: str) -> None:
    ok = httpx.post(f"{server}/predict", json=[ROW])
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["model_version"] == 1 and len(body["predictions"]) == 1
    assert 0.0 <= body["probabilities"][0][1] <= 1.0
    missing = httpx.post(f"{server}/predict", json=[{k: v for k, v in ROW.items() if k != "dest"}])
    assert missing.status_code == 422
    assert "dest" in missing.text
    assert httpx.get(f"{server}/v2/models/flights").status_code == 200
    infer = httpx.post(
        f"{server}/v2/models/flights/infer",
        json={
            "inputs": [
                {
                    "name": k,
                    "shape": [1],
                    "datatype": "BYTES" if isinstance(v, str) else "FP64",
                    "data": [v],
                }
                for k, v in ROW.items()
            ]
        },
    )
    assert infer.status_code == 200, infer.text
    json_type = {"content-type": "application/json"}
    bad = httpx.post(f"{server}/predict", content=b"{not json", headers=json_type)
    assert bad.status_code == 400


def test_bad_spec_key_is_exit_2_and_names_the_key(fresh: Path) -> None:
    spec = yaml.safe_load((fresh / "mlcycle.yaml").read_text())
    spec["problem"]["targit"] = spec["problem"].pop("target")
    (fresh / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    result = cli(fresh, "run", check=False)
    assert result.returncode == 2
    assert "problem.targit" in result.stderr and "did you mean 'target'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (fresh / ".mlcycle").exists()


def test_unknown_target_column_is_exit_2(fresh: Path) -> None:
    spec = yaml.safe_load((fresh / "mlcycle.yaml").read_text())
    spec["problem"]["target"] = "is_late"
    (fresh / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    result = cli(fresh, "run", check=False)
    assert result.returncode == 2
    assert "is_late" in result.stderr and "ingest" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_and_unreadable_data_files(fresh: Path) -> None:
    data = fresh / "data" / "flights.parquet"
    data.write_bytes(b"")
    result = cli(fresh, "run", check=False)
    assert result.returncode == 2 and "flights.parquet" in result.stderr
    data.write_bytes(b"this is not parquet")
    result = cli(fresh, "run", check=False)
    assert result.returncode == 2 and "flights.parquet" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_that_breaks_the_frozen_contract_stops_the_run(project: Path, tmp_path: Path) -> None:
    work = tmp_path / "proj"
    shutil.copytree(project, work)
    data = work / "data" / "flights.parquet"
    df = pd.read_parquet(data)
    df["distance"] = df["distance"].astype(str)  # retyped column
    df.drop(columns=["carrier"]).to_parquet(data)
    result = cli(work, "run", check=False)
    assert result.returncode == 2, result.stderr
    assert "validate" in result.stderr or "ingest" in result.stderr
    assert "carrier" in result.stderr or "distance" in result.stderr
    versions = json.loads(cli(work, "models", "list", "--json").stdout)
    assert [v["version"] for v in versions["flights"]] == [1]


def test_serving_a_missing_model_is_exit_2(project: Path) -> None:
    result = cli(project, "serve", "models:/flights@nosuch", check=False)
    assert result.returncode == 2
    assert "no alias 'nosuch'" in result.stderr
    result = cli(project, "serve", "models:/ghost@champion", check=False)
    assert result.returncode == 2 and "ghost" in result.stderr


def test_help_has_an_example_for_every_command() -> None:
    for command in (
        ["run"],
        ["init"],
        ["serve"],
        ["predict"],
        ["lineage"],
        ["models", "show"],
        ["models", "promote"],
        ["monitor", "drift"],
        ["data", "versions"],
    ):
        result = cli(Path.cwd(), *command, "--help")
        assert "Example" in result.stdout, command


def test_rolling_back_the_only_version_is_exit_2_and_the_error_alone(project: Path) -> None:
    refused = cli(project, "models", "rollback", "flights", check=False)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("mlcycle: flights@champion has no earlier version")
    shown = json.loads(cli(project, "models", "show", "flights@champion", "--json").stdout)
    assert shown["version"] == 1
