"""An ad-hoc drift report on large samples never imports SciPy's statistics.

``import scipy.stats`` costs about half a second, more than the whole report
takes: Wasserstein and Jensen-Shannon (the tests for more than 1,000 reference
rows, and mlcycle's calibrated default at any size) are NumPy only, and only the
small-sample p-value tests import SciPy when they run. Checked in a fresh
process, as a user starts `mlcycle monitor drift -r a.csv -c b.csv`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

# SciPy's costly modules: the statistics, the special functions, the distances.
COSTLY = ("scipy.stats", "scipy.special", "scipy.spatial")

# Runs `mlcycle ARGS` once per JSON list in argv as the console script does, and
# reports after each run which of COSTLY are imported, and the exit code.
PROBE = r"""
import json, sys
from mlcycle.cli.main import main
costly = json.loads(sys.argv[1])
found = []
for args in sys.argv[2:]:
    sys.argv = ["mlcycle", *json.loads(args)]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    found.append({"code": code, "loaded": [m for m in costly if m in sys.modules]})
sys.stderr.write("\nPROBE " + json.dumps(found) + "\n")
"""


def _frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(shift, 1.0, rows).round(3),
            "count": rng.integers(0, 40, rows),
            "colour": rng.choice(["red", "green", "blue", "grey"], rows),
            "member": rng.choice(["yes", "no"], rows),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Reference and current CSVs: 1,500 rows each (large), and 300 rows (small)."""
    root = tmp_path_factory.mktemp("drift-imports")
    out = {}
    for name, rows, seed, shift in (
        ("ref", 1_500, 0, 0.0),
        ("cur", 1_500, 1, 0.5),
        ("small_ref", 300, 2, 0.0),
        ("small_cur", 300, 3, 0.5),
    ):
        out[name] = root / f"{name}.csv"
        _frame(rows, seed, shift).to_csv(out[name], index=False)
    return out


def _probe(runs: list[list[str]], cwd: Path) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLCYCLE_")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(COSTLY), *map(json.dumps, runs)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
    )  # fmt: skip
    report = done.stderr.rsplit("PROBE ", 1)
    assert len(report) == 2, done.stderr[-3000:]
    found: list[dict[str, Any]] = json.loads(report[1])
    return found


def test_large_sample_drift_imports_no_scipy_stats(files: dict[str, Path]) -> None:
    out = files["ref"].parent
    large = ["monitor", "drift", "-r", str(files["ref"]), "-c", str(files["cur"])]
    small = ["monitor", "drift", "-r", str(files["small_ref"]), "-c", str(files["small_cur"])]
    auto, evidently, small_p_values = _probe(
        [
            [*large, "-o", str(out / "auto.json")],  # mlcycle's default: calibrated distances
            [*large, "--test", "evidently", "-o", str(out / "evidently.json")],
            # The control: at 300 rows Evidently's rules pick KS, chi2 and Z, which need SciPy.
            [*small, "--test", "evidently", "--json"],
        ],
        cwd=out,
    )
    assert auto == {"code": 0, "loaded": []}
    assert evidently == {"code": 0, "loaded": []}
    assert small_p_values["code"] == 0 and "scipy.stats" in small_p_values["loaded"]
    # The reports are whole: every column tested, by the tests the rules name.
    tests = {
        f["feature"]: f["test"]
        for f in json.loads((out / "evidently.json").read_text())["features"]
    }
    assert tests == {
        "amount": "wasserstein",
        "count": "wasserstein",
        "colour": "js",
        "member": "js",
    }
    drift = {
        f["feature"]: f["drift"] for f in json.loads((out / "auto.json").read_text())["features"]
    }
    assert drift == {"amount": True, "count": False, "colour": False, "member": False}


def test_a_parquet_side_is_read_with_only_the_columns_asked(tmp_path: Path) -> None:
    from mlcycle.cli.monitor_drift import _read_file
    from mlcycle.errors import BadInput

    frame = _frame(50, 0, 0.0)
    frame.to_parquet(tmp_path / "side.parquet")
    spec = tmp_path / "mlcycle.yaml"  # no project: the file is read as it is
    got, schema = _read_file(str(tmp_path / "side.parquet"), spec, ["colour", "nope", "amount"])
    # In the order asked, as pandas reads them; a missing column is drift_report's to name.
    pd.testing.assert_frame_equal(
        got, pd.read_parquet(tmp_path / "side.parquet")[["colour", "amount"]]
    )
    assert schema is None
    whole, _ = _read_file(str(tmp_path / "side.parquet"), spec, None)
    pd.testing.assert_frame_equal(whole, pd.read_parquet(tmp_path / "side.parquet"))
    # What the shortcut cannot read goes to read_data, which says what is wrong.
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(BadInput, match=r"cannot read data file .*bad\.parquet as Parquet"):
        _read_file(str(tmp_path / "bad.parquet"), spec, ["amount"])
