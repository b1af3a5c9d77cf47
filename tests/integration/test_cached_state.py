"""Cached steps report live state, through the real `mlcycle` command on a small project.

A cached result is reused only while what it says still holds, and a reused
summary claims no work it did not do: a cached ingest wrote no contract file,
and a cached promote must not report a champion that was rolled back since.
After `mlcycle models rollback`, `mlcycle run` leaves the rollback in place (it
is a recorded decision) and says who made it and when.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")


def cli(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    result = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, text=True, capture_output=True, env=env, timeout=300, check=False
    )
    assert result.returncode == code, (
        f"mlcycle {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result


def _write_project(root: Path, exclude: list[str]) -> None:
    rng = np.random.default_rng(13)
    X = rng.normal(size=(2000, 5))
    logit = X @ np.array([1.0, 0.8, 0.5, 0.3, 0.25]) - 0.5
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(1, 6)])
    df["label"] = rng.random(len(df)) < 1 / (1 + np.exp(-logit))
    df.to_parquet(root / "data.parquet", index=False)
    spec = {
        "project": "synth",
        "problem": {
            "task": "binary",
            "target": "label",
            "positive_label": True,
            "primary_metric": "roc_auc",
        },
        "data": {"source": {"path": "data.parquet"}, "features": {"exclude": exclude}},
        "prepare": {"split": {"strategy": "random"}},
        "train": {
            "seed": 42,
            "baseline": "prior",
            "candidates": [{"name": "lr", "estimator": "logistic_regression"}],
        },
        # Non-inferiority with a wide margin: the second model is blessed and promoted.
        "gates": {
            "baseline_margin": 0.05,
            "thresholds": {"roc_auc": 0.6},
            "champion": {"mode": "non_inferiority", "tolerance": 0.05},
            "infra_check": False,
        },
        "evaluate": {"bootstrap": 50},
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))


def _steps(run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in json.loads(run.stdout)["steps"]}


@pytest.fixture(scope="module")
def one_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cached") / "proj"
    root.mkdir()
    _write_project(root, [])
    first = _steps(cli(root, "run", "--json"))
    assert first["ingest"]["summary"]["schema"] == "inferred, written to schema.yaml"
    assert first["promote"]["summary"] == {"champion": 1, "previous": None}
    return root


def test_a_cached_ingest_does_not_claim_it_wrote_the_contract(one_version: Path) -> None:
    again = _steps(cli(one_version, "run", "--json"))
    assert {s["status"] for s in again.values()} == {"cached"}
    ingest = again["ingest"]["summary"]
    assert ingest["schema"] == "contract schema.yaml" and "new_rows" not in ingest
    # Nothing was promoted in this run either.
    assert again["promote"]["summary"] == {"champion": 1}


def test_rolling_back_the_only_version_is_an_error_alone(one_version: Path) -> None:
    refused = cli(one_version, "models", "rollback", "synth", code=2)
    assert refused.stdout == ""
    assert refused.stderr.startswith("mlcycle: synth@champion has no earlier version")
    history = json.loads(cli(one_version, "models", "history", "synth", "--json").stdout)
    assert [(e["from_version"], e["to_version"]) for e in history] == [(None, 1)]


def test_run_after_a_rollback_keeps_it_and_says_so(one_version: Path, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    shutil.copytree(one_version, root)
    _write_project(root, ["x5"])  # a different model: version 2, blessed, promoted
    second = _steps(cli(root, "run", "--json"))
    assert second["register"]["summary"]["version"] == 2
    assert second["promote"]["summary"] == {"champion": 2, "previous": 1}

    back = json.loads(
        cli(root, "models", "rollback", "synth", "--reason", "latency", "--json").stdout
    )
    assert (back["from"], back["to"]) == (2, 1)
    event = json.loads(cli(root, "models", "history", "synth", "--json").stdout)[-1]

    shown = cli(root, "run").stdout
    promote = next(line for line in shown.splitlines() if "promote" in line)
    assert "champion=2" not in shown and "champion=1" in promote, shown
    assert "v2 not re-promoted: rolled back to v1 at" in " ".join(shown.split()), shown
    assert event["actor"] in shown
    champion = json.loads(cli(root, "models", "show", "synth@champion", "--json").stdout)
    assert champion["version"] == 1
    history = json.loads(cli(root, "models", "history", "synth", "--json").stdout)
    assert len(history) == 3  # no re-promotion recorded

    # Cached from now on, and still true: the champion is v1, and why.
    third = _steps(cli(root, "run", "--json"))
    assert third["promote"]["status"] == "cached"
    assert third["promote"]["summary"]["champion"] == 1
    assert "rolled back to v1" in third["promote"]["summary"]["note"]
    assert "(latency)" in third["promote"]["summary"]["note"]
