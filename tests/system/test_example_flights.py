"""The flights example is one a team would ship: features known at departure, no calendar
column the January–June training data cannot teach, and `mlcycle run` warns the moment
someone adds one back (through the real command, up to the split)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlcycle.examples.flights import SPEC

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")
FEATURES = ["dep_delay", "hour", "day_of_week", "carrier", "origin", "dest", "distance"]


def cli(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    done = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, text=True, capture_output=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, f"mlcycle {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    # Rich wraps at the terminal's width: compare words, not line breaks.
    return done.stdout if "--json" in args else " ".join(done.stdout.split())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    cli(root, "init", "proj", "--example", "flights", "--sample", "0.02")
    return root / "proj"


def test_the_spec_names_each_feature_with_its_reason() -> None:
    features = yaml.safe_load(SPEC)["data"]["features"]
    assert features["include"] == FEATURES
    assert not features.get("seasonal")
    lines = {line.split("#")[0].strip(" -"): line for line in SPEC.splitlines() if "#" in line}
    for name in FEATURES:
        assert name in lines, f"'{name}' has no comment saying why it is a feature"
    for left_out in ("arr_delay", "month, day", "dep_time", "sched_arr_time", "tailnum"):
        assert left_out in SPEC, f"the spec does not say why '{left_out}' is left out"


def test_the_data_holds_the_features_and_local_months(project: Path) -> None:
    train = pd.read_parquet(project / "data" / "flights.parquet")
    future = pd.read_parquet(project / "data" / "flights_future.parquet")
    for part, months in ((train, set(range(1, 7))), (future, set(range(7, 13)))):
        assert set(FEATURES) <= set(part.columns)
        assert set(part["month"]) == months
        # time_hour is New York time, like month/day/hour: windows cut by it are the months.
        assert (part["time_hour"].dt.month == part["month"]).all()
        assert (part["time_hour"].dt.hour == part["hour"]).all()
        dates = pd.to_datetime(part[["year", "month", "day"]])
        assert (dates.dt.day_of_week == part["day_of_week"]).all()  # 0 = Monday


def test_the_example_has_no_range_warning_and_month_back_in_gets_one(project: Path) -> None:
    clean = cli(project, "run", "--until", "split")
    assert "✔ split ran" in clean and "warning:" not in clean

    spec = yaml.safe_load((project / "mlcycle.yaml").read_text())
    spec["data"]["features"]["include"] = [*FEATURES, "month"]
    (project / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    warned = cli(project, "run", "--until", "split")
    assert "warning: feature 'month' is 1–5 in training but 5–6 in validation/test" in warned
    assert "calendar column (month)" in warned
    assert "feature 'dep_delay'" not in warned  # heavy tails, not a range problem
    (split,) = [
        s for s in json.loads(cli(project, "steps", "--json"))["steps"] if s["step"] == "split"
    ]
    (finding,) = json.loads(split["outputs"])["out_of_range"]
    assert finding["column"] == "month" and finding["holdout_max"] == 6

    spec["data"]["features"]["seasonal"] = ["month"]
    (project / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    assert "warning:" not in cli(project, "run", "--until", "split")
