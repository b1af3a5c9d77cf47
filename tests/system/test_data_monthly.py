"""Twelve monthly incremental ingests of flights through the real CLI; month 7 is broken.

The broken month (a retyped column and a burst of nulls) must be caught as an
error, its version kept but quarantined, and no model may ever train on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlcycle.cli.main import app
from mlcycle.data import infer_schema
from mlcycle.spec import Spec

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
BROKEN = 7
CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MLCYCLE_")}


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


def cli(cwd: Path, *args: str, check: bool = True) -> Result:
    """Run `mlcycle ARGS` in ``cwd``: in-process (the same Typer app as the command), since
    the many interpreter start-ups would cost more than the work itself."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, list(args), env=CLEAN_ENV)
    finally:
        os.chdir(previous)
    result = Result(done.exit_code, done.stdout, done.stderr)
    if check and result.returncode != 0:
        raise AssertionError(
            f"mlcycle {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        )
    return result


def test_every_data_command_has_help_with_an_example() -> None:
    real = subprocess.run([MLCYCLE, "data", "--help"], capture_output=True, text=True, check=False)
    assert real.returncode == 0 and "ingest" in real.stdout
    for command in (
        "ingest",
        "versions",
        "show",
        "diff",
        "schema",
        "validate",
        "profile",
        "report",
        "accept",
    ):
        done = cli(Path.cwd(), "data", command, "--help")
        assert "Example" in done.stdout, command


@pytest.fixture(scope="module")
def monthly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("monthly")
    cli(root, "init", "proj", "--example", "flights", "--sample", "0.02")
    project = root / "proj"
    data = project / "data"
    every = pd.concat(
        [
            pd.read_parquet(data / "flights.parquet"),
            pd.read_parquet(data / "flights_future.parquet"),
        ],
        ignore_index=True,
    )
    spec = yaml.safe_load((project / "mlcycle.yaml").read_text())
    spec["data"]["source"] = {"path": "data/monthly", "watermark": "time_hour"}
    spec["data"]["expectations"] = [
        {"check": "null_rate", "column": "carrier", "max": 0.05},
        {"check": "row_count", "min": 100},
        {"check": "distribution", "threshold": 0.5, "severity": "warn"},
    ]
    # A small model: this test is about the data, not the training.
    spec["train"]["candidates"] = [
        {"name": "hgb", "estimator": "hist_gradient_boosting", "params": {"max_iter": 20}}
    ]
    (project / "mlcycle.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    # The contract, as a person would settle it: inferred from a clean year.
    parsed = Spec.load(project / "mlcycle.yaml")
    infer_schema(every, parsed.problem, parsed.data.features).to_yaml(project / "schema.yaml")

    folder = data / "monthly"
    folder.mkdir()
    results = []
    for month in range(1, 13):
        rows = every[every["month"] == month].copy()
        if month == BROKEN:
            rows["dep_delay"] = rows["dep_delay"].map(lambda v: f"{v:.0f} min")  # retyped
            rows.loc[rows.sample(frac=0.4, random_state=0).index, "carrier"] = None  # nulls
        rows.to_parquet(folder / f"2013-{month:02d}.parquet", index=False)
        done = cli(project, "data", "ingest", "--json", check=False)
        results.append((done.returncode, json.loads(done.stdout), done.stderr))
    return {"project": project, "results": results, "every": every}


def test_each_month_lands_only_its_own_rows(monthly: dict[str, Any]) -> None:
    every = monthly["every"]
    for month, (_, out, _) in enumerate(monthly["results"], start=1):
        assert out["ingest"]["rows_new"] == int((every["month"] == month).sum()), month
    raw = sorted((monthly["project"] / ".mlcycle" / "raw" / "main").glob("ingested_at=*"))
    assert len(raw) == 12


def test_the_broken_month_is_an_error_and_quarantined(monthly: dict[str, Any]) -> None:
    code, out, stderr = monthly["results"][BROKEN - 1]
    assert code == 2 and out["status"] == "invalid"
    assert "dep_delay" in stderr and "carrier" in stderr and "Traceback" not in stderr
    for month, (rc, result, _) in enumerate(monthly["results"], start=1):
        if month != BROKEN:
            assert rc == 0 and result["status"] == "valid", (month, result)

    project = monthly["project"]
    versions = json.loads(cli(project, "data", "versions", "--json").stdout)
    assert len(versions) == 12
    invalid = [v for v in versions if v["status"] == "invalid"]
    assert len(invalid) == 1 and invalid[0]["id"] == out["dataset"]
    assert "carrier" in invalid[0]["reason"]
    again = cli(project, "data", "validate", out["dataset"][:12], "--json", check=False)
    assert again.returncode == 2
    checks = {(v["column"], v["check"]) for v in json.loads(again.stdout)["violations"]}
    assert {("dep_delay", "type"), ("carrier", "null_rate")} <= checks


def test_training_never_sees_the_broken_month(monthly: dict[str, Any]) -> None:
    project = monthly["project"]
    # Up to training: what the model is fitted on is what matters here.
    run = json.loads(cli(project, "run", "--until", "train", "--json").stdout)
    assert run["status"] == "succeeded"
    dataset = run["outputs"]["dataset"]
    assert dataset == monthly["results"][-1][1]["dataset"]
    shown = json.loads(cli(project, "data", "show", dataset[:12], "--json").stdout)
    assert shown["status"]["status"] == "valid"
    assert len(shown["partitions"]) == 11
    # The trained model's lineage reaches exactly this valid version.
    tree = json.loads(cli(project, "lineage", run["outputs"]["model"][:12], "--json").stdout)
    datasets = {n["id"] for n in tree["inputs"] if n["kind"] == "dataset"}
    assert datasets == {dataset}
    data = pd.read_parquet(
        project / ".mlcycle" / "artifacts" / dataset[:2] / dataset / "data.parquet"
    )
    assert BROKEN not in set(data["month"]) and len(data) == int(
        (monthly["every"]["month"] != BROKEN).sum()
    )


def test_diff_profile_schema_and_report(monthly: dict[str, Any], tmp_path: Path) -> None:
    project = monthly["project"]
    first = monthly["results"][0][1]["dataset"]
    second = monthly["results"][1][1]["dataset"]
    diff = json.loads(cli(project, "data", "diff", first[:12], second[:12], "--json").stdout)
    every = monthly["every"]
    assert diff["rows"] == {
        "added": int((every["month"] == 2).sum()),
        "removed": 0,
        "kept": int((every["month"] == 1).sum()),
    }
    assert diff["distance"]["month"] > 0.3 and diff["distance"]["carrier"] < 0.3

    profile = json.loads(cli(project, "data", "profile", "--json").stdout)
    assert profile["rows"] == int((every["month"] != BROKEN).sum())
    proposal = json.loads(cli(project, "data", "schema", "--propose", "--json").stdout)
    assert isinstance(proposal["changes"], list)

    broken = monthly["results"][BROKEN - 1][1]["dataset"]
    target = tmp_path / "report.html"
    cli(project, "data", "report", broken[:12], "-o", str(target))
    html = target.read_text()
    assert "<svg" in html and "dep_delay" in html and "invalid" in html
    assert "http://" not in html and "https://" not in html  # nothing loaded from the network

    bad = cli(project, "data", "show", "zzzzzz", check=False)
    assert bad.returncode == 2 and "zzzzzz" in bad.stderr
