"""`mlcycle monitor …` end to end: replay a half year of flights, labels, alerts, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
# The first test pays for `mlcycle run` plus the replay (about a minute on an idle
# 2-core machine); a machine busy with other suites needs more than the default 300 s.
pytestmark = pytest.mark.timeout(900)


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
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 2% flights project with a synthetic `control` feature that never changes, trained
    and replayed July-December with labels one month late."""
    root = tmp_path_factory.mktemp("monitor")
    cli(root, "init", "proj", "--example", "flights", "--sample", "0.02")
    proj = root / "proj"
    rng = np.random.default_rng(0)
    for name in ("flights.parquet", "flights_future.parquet"):
        path = proj / "data" / name
        df = pd.read_parquet(path)
        df["control"] = rng.normal(100.0, 15.0, len(df))  # same distribution in both halves
        df.to_parquet(path, index=False)
    spec = proj / "mlcycle.yaml"
    text = spec.read_text()
    # A loaded test machine must not fail the latency gate; fewer trees keep the test short.
    text = text.replace("latency_budget_ms: 50", "latency_budget_ms: 100000")
    text = text.replace("max_iter: 200", "max_iter: 40")
    spec.write_text(text)
    cli(proj, "run")
    out = cli(proj, "monitor", "replay", "--label-delay", "1", "--report", "replay.html", "--json")
    return proj, json.loads(out.stdout)


def test_replay_alerts_on_the_shifted_feature_and_not_on_the_control(
    replayed: tuple[Path, dict],
) -> None:
    proj, result = replayed
    months = [s["month"] for s in result["steps"] if s["month"]]
    assert months[:6] == ["2013-07", "2013-08", "2013-09", "2013-10", "2013-11", "2013-12"]
    rules = {a["rule"] for a in result["alerts"]}
    assert "data_drift:month" in rules  # July-December vs January-June
    assert "data_drift:control" not in rules
    assert all(a["model_version"] == 1 and a["window"] for a in result["alerts"])
    assert sum(s["labels_stored"] or 0 for s in result["steps"]) > 1000
    listed = json.loads(cli(proj, "monitor", "alerts", "--json").stdout)
    assert {a["rule"] for a in listed} == rules


def test_report_is_one_self_contained_html_file(replayed: tuple[Path, dict]) -> None:
    proj, _ = replayed
    cli(proj, "monitor", "report", "-o", "again.html")
    for name in ("replay.html", "again.html"):
        html = (proj / name).read_text()
        assert html.count("<svg") > 10
        for section in (
            "Data drift",
            "Distributions of drifted features",
            "Performance over time",
            "anomal",
            "Alerts (",
        ):
            assert section in html, section
        assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
        assert "https://" not in html


def test_labels_report_unknown_ids_and_duplicates(replayed: tuple[Path, dict]) -> None:
    proj, _ = replayed
    future = pd.read_parquet(proj / "data" / "flights_future.parquet")
    labels = future[["flight_id", "delayed"]].head(3)
    bad = pd.concat([labels, labels.head(1), pd.DataFrame({"flight_id": [-1], "delayed": [True]})])
    bad.to_parquet(proj / "labels.parquet", index=False)
    report = json.loads(cli(proj, "monitor", "labels", "--file", "labels.parquet", "--json").stdout)
    assert report["rows"] == 5 and report["unknown_ids"] == 1 and report["duplicates"] == 2
    assert report["unknown_examples"] == ["-1"] and report["stored"] == 0
    missing = cli(
        proj, "monitor", "labels", "--file", "labels.parquet", "--label-column", "nope", check=False
    )
    assert missing.returncode == 2 and "no column 'nope'" in missing.stderr


def test_run_is_incremental(replayed: tuple[Path, dict]) -> None:
    proj, _ = replayed
    summary = json.loads(cli(proj, "monitor", "run", "--window", "month", "--json").stdout)
    assert summary["new_files"] == 0 and summary["windows_updated"] == []


def test_ad_hoc_drift_modes_and_bad_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.choice(["x", "y"], 3000)})
    cur = pd.DataFrame({"a": rng.normal(0.5, 1, 2000), "b": rng.choice(["x", "y"], 2000)})
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    for test in ("auto", "evidently"):
        rows = json.loads(
            cli(
                tmp_path,
                "monitor",
                "drift",
                "-r",
                "ref.parquet",
                "-c",
                "cur.parquet",
                "--test",
                test,
                "--json",
            ).stdout
        )
        assert {"feature", "test", "statistic", "p_value", "threshold", "drift"} <= set(rows[0])
        assert [r["drift"] for r in rows] == [True, False], test
    cur.drop(columns="b").to_parquet(tmp_path / "missing.parquet")
    out = cli(
        tmp_path,
        "monitor",
        "drift",
        "-r",
        "ref.parquet",
        "-c",
        "missing.parquet",
        "--columns",
        "a,b",
        check=False,
    )
    assert out.returncode == 2 and "'b' missing from the current data" in out.stderr
    cur.iloc[:0].to_parquet(tmp_path / "empty.parquet")
    out = cli(tmp_path, "monitor", "drift", "-r", "ref.parquet", "-c", "empty.parquet", check=False)
    assert out.returncode == 2 and "no rows" in out.stderr
    out = cli(
        tmp_path,
        "monitor",
        "drift",
        "-r",
        "ref.parquet",
        "-c",
        "cur.parquet",
        "--columns",
        "a,zz",
        check=False,
    )
    assert out.returncode == 2 and "'zz' missing from the reference data" in out.stderr


def test_help_has_an_example() -> None:
    from typer.testing import CliRunner

    from mlcycle.cli.main import app

    for command in ("run", "labels", "alerts", "report", "replay", "drift"):
        result = CliRunner().invoke(app, ["monitor", command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, command
