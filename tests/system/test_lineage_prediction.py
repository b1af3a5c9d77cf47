"""`mlcycle lineage prediction:<request_id>[/<row_id>]` on a real project: rows served over
REST land in the prediction log and trace back to the version, bundle, gate and data.
Also `mlcycle models list`: the registry read without SQLAlchemy or pandas."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
REQUEST = "req-lineage-0001"


def cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    result = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, text=True, capture_output=True, env=env, timeout=900, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"mlcycle {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def _frame(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    kind = rng.choice(["a", "b", "c"], n)
    y = rng.random(n) < 1 / (1 + np.exp(-(2 * x + (kind == "a"))))
    return pd.DataFrame({"order_id": [f"o{i}" for i in range(n)], "x": x, "kind": kind, "late": y})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project made by `init --data` and one `mlcycle run` (bootstrap and the infra check
    turned down: this test is about the log, not the gate)."""
    root = tmp_path_factory.mktemp("lineage")
    _frame().to_csv(root / "orders.csv", index=False)
    cli(root, "init", "proj", "--data", "orders.csv", "--target", "late")
    spec_path = root / "proj" / "mlcycle.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["evaluate"] = {"bootstrap": 50}
    spec["gates"]["infra_check"] = False
    spec_path.write_text(yaml.safe_dump(spec))
    cli(root / "proj", "run")
    return root / "proj"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[dict[str, object]]:
    """One REST request of two rows (one with its own id), logged; the server stopped."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    proc = subprocess.Popen(
        [MLCYCLE, "serve", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
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
        rows = [{"order_id": "o-new-7", "x": 1.5, "kind": "a"}, {"x": -2.0, "kind": "c"}]
        answer = httpx.post(f"{base}/predict", json=rows, headers={"X-Request-ID": REQUEST})
        assert answer.status_code == 200, answer.text
    finally:
        proc.send_signal(signal.SIGTERM)  # the log writer flushes on shutdown
        proc.wait(timeout=60)
    yield answer.json()


def test_a_request_traces_to_its_model_version_bundle_gate_and_data(
    project: Path, served: dict[str, object]
) -> None:
    found = json.loads(cli(project, "lineage", f"prediction:{REQUEST}", "--json").stdout)
    assert found["rows_total"] == 2
    assert [r["row_id"] for r in found["rows"]] == ["o-new-7", f"{REQUEST}:1"]
    assert [r["prediction"] for r in found["rows"]] == [str(p) for p in served["predictions"]]  # type: ignore[attr-defined]
    assert found["rows"][0]["x"] == 1.5 and found["rows"][0]["kind"] == "a"
    [version] = found["versions"]
    shown = json.loads(cli(project, "models", "show", "proj/1", "--json").stdout)
    assert (version["name"], version["version"], version["roles"]) == ("proj", 1, ["champion"])
    assert version["bundle_id"] == shown["bundle_id"]
    assert version["gate"]["blessed"] is True and version["gate"]["failed_checks"] == []
    assert version["dataset_id"] == shown["dataset_id"]
    assert version["git_sha"] == shown["git_sha"]
    assert version["run_id"]
    assert version["tree"]["kind"] == "bundle"

    one = json.loads(cli(project, "lineage", f"prediction:{REQUEST}/o-new-7", "--json").stdout)
    assert one["rows_total"] == 1 and one["rows"][0]["row_id"] == "o-new-7"
    text = cli(project, "lineage", f"prediction:{REQUEST}/o-new-7").stdout
    assert "made by proj v1" in text and shown["dataset_id"] in text.replace("\n", "")


def test_unknown_request_or_row_is_exit_2(project: Path, served: dict[str, object]) -> None:
    missing = cli(project, "lineage", "prediction:no-such-request", check=False)
    assert missing.returncode == 2
    assert "no logged prediction has request id 'no-such-request'" in missing.stderr
    row = cli(project, "lineage", f"prediction:{REQUEST}/nope", check=False)
    assert row.returncode == 2 and "o-new-7" in row.stderr  # names the row ids it has
    empty = cli(project, "lineage", "prediction:", check=False)
    assert empty.returncode == 2 and "needs a request id" in empty.stderr


def test_models_list_reads_the_registry_without_heavy_imports(project: Path) -> None:
    from mlcycle.pipeline.project import Project

    registry = Project.load(project / "mlcycle.yaml").registry
    expected = {n: [v.model_dump() for v in registry.versions(n)] for n in registry.models()}
    listed = json.loads(cli(project, "models", "list", "--json").stdout)
    assert listed == expected
    probe = (
        "import sys\n"
        "from mlcycle.cli.main import app\n"
        "try:\n"
        "    app(['models', 'list', '--json'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = [m for m in ('sqlalchemy', 'pandas', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=project, env=env, text=True, capture_output=True
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout


def test_find_logged_rows_reads_a_log_behind_a_url() -> None:
    """MLCYCLE_PREDICTIONS_URL may name any fsspec URL (memory:// stands in for s3://)."""
    from mlcycle.cli.lineage import find_logged_rows
    from mlcycle.errors import NotFound
    from mlcycle.predlog import write_predictions

    root = "memory://lineage-test/log"
    rows = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2"],
            "ts": pd.to_datetime(["2026-01-02", "2026-01-01", "2026-01-01"], utc=True),
            "model": "m",
            "model_version": 1,
            "role": "batch",
            "x": [1.0, 2.0, 3.0],
            "row_id": ["a", "b", "c"],
            "prediction": ["y", "n", "y"],
        }
    )
    write_predictions(root, "m", rows)  # one file per day
    found = find_logged_rows(root, "r1")
    assert found["row_id"].tolist() == ["b", "a"]  # both days, in time order
    assert find_logged_rows(root, "r1", "a")["x"].tolist() == [1.0]
    with pytest.raises(NotFound, match="holds models m"):
        find_logged_rows(root, "r3")
