"""`mlcycle run` warns, under a time split, about a feature whose later values leave the
training range, keeps the finding in the run log, and stops once the column is marked
seasonal — through the real command on a small synthetic project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")


def cli(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    done = subprocess.run(
        [MLCYCLE, *args], cwd=cwd, text=True, capture_output=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, f"mlcycle {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    # Rich wraps at the terminal's width: compare words, not line breaks.
    return done.stdout if "--json" in args else " ".join(done.stdout.split())


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A year of rows in time order; `month` is a feature, `x` is the same all year."""
    rng = np.random.default_rng(7)
    ts = pd.date_range("2024-01-01", "2024-12-31", periods=1500)
    x = rng.normal(size=len(ts))
    pd.DataFrame(
        {
            "id": np.arange(len(ts)),
            "ts": ts.astype(str),
            "month": ts.month,
            "x": x.round(4),
            "y": (x + rng.normal(scale=0.5, size=len(ts)) > 0).astype(int),
        }
    ).to_csv(tmp_path / "rows.csv", index=False)
    spec = {
        "project": "calendar",
        "problem": {"task": "binary", "target": "y", "id_column": "id", "timestamp_column": "ts"},
        "data": {"source": {"path": "rows.csv"}},
        "prepare": {"split": {"strategy": "time", "valid_fraction": 0.15, "test_fraction": 0.15}},
    }
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def _mark_seasonal(project: Path, columns: list[str]) -> None:
    spec = yaml.safe_load((project / "mlcycle.yaml").read_text())
    spec["data"]["features"] = {"seasonal": columns}
    (project / "mlcycle.yaml").write_text(yaml.safe_dump(spec))


def test_run_warns_about_the_month_and_not_once_it_is_seasonal(project: Path) -> None:
    out = cli(project, "run", "--until", "split")
    # Training is January to about mid-September; validation/test the rest of the year.
    assert "warning: feature 'month' is 1–9 in training but 9–12 in validation/test" in out
    assert "calendar column (month)" in out and "tracks the timestamp" in out
    assert "data.features.seasonal" in out and "data.features.exclude" in out
    assert "feature 'x'" not in out  # a column with the same range all year is fine

    # The finding stays readable after the run: in the run log, and restated from cache.
    steps = json.loads(cli(project, "steps", "--json"))
    (split,) = [s for s in steps["steps"] if s["step"] == "split"]
    (finding,) = json.loads(split["outputs"])["out_of_range"]
    assert finding["column"] == "month" and finding["holdout_max"] == 12
    assert finding["train_min"] == 1 and finding["outside_share"] > 0.5
    again = cli(project, "run", "--until", "split")
    assert "↺ split cached" in again and "warning: feature 'month'" in again

    _mark_seasonal(project, ["month"])
    marked = cli(project, "run", "--until", "split")
    assert "✔ split ran" in marked  # the seasonal list is part of the split's cache key
    assert "warning:" not in marked


def test_a_random_split_has_no_range_warning(project: Path) -> None:
    spec = yaml.safe_load((project / "mlcycle.yaml").read_text())
    spec["prepare"]["split"]["strategy"] = "random"
    (project / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    assert "warning:" not in cli(project, "run", "--until", "split")
