"""ONNX export of a real pipeline run: parity on the holdout split, at the gate and on demand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")


def cli(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    result = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, text=True, capture_output=True, env=env, timeout=600, check=False
    )
    assert result.returncode == 0, f"mlcycle {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    cli(root, "init", "proj", "--example", "flights", "--sample", "0.05")
    cli(root / "proj", "run")
    return root / "proj"


def test_parity_is_checked_on_the_holdout_split(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    result = json.loads(
        cli(project, "models", "export", "flights@champion", "--out", str(out), "--json")
    )
    parity = result["parity"]
    assert parity["passed"] and parity["source"] == "holdout"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["parity"] == parity and manifest["model_version"] == 1
    # The gate exported the same model on the same rows when it built the package
    # (the bundle copies the package): the evaluation's test split, not the sample.
    at_gate = [
        json.loads(p.read_text())["parity"]
        for p in project.rglob("onnx/manifest.json")
        if out not in p.parents
    ]
    assert at_gate, "the pipeline wrote no ONNX export"
    for report in at_gate:
        assert report["source"] == "holdout"
        assert report["rows"] == parity["rows"]
        assert report["max_abs_diff"] == parity["max_abs_diff"]
    reference = next(project.rglob("reference.parquet"))
    assert parity["rows"] != len(pd.read_parquet(reference))
