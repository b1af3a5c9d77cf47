"""`mlcycle init DIR --data FILE --target COLUMN`, then `mlcycle run` on the spec as written:
a generated mixed-type CSV and scikit-learn's bundled datasets as Parquet."""

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
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

MLCYCLE = str(Path(sys.executable).parent / "mlcycle")


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


def mixed_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Customers: numbers with gaps, text, booleans, dates as text, a constant, an empty
    column, free text, string labels (30% 'yes'), some rows without a label, and a
    column that is only known after the outcome."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.05] = np.nan
    plan = rng.choice(["basic", "plus", "pro"], n)
    tenure = rng.exponential(20, n)
    active = rng.random(n) < 0.6
    logit = -1.5 + 0.03 * np.nan_to_num(age, nan=40) - 0.06 * tenure + 1.2 * (plan == "basic")
    churn = rng.random(n) < 1 / (1 + np.exp(-(logit + 0.8 * ~active)))
    hours = np.sort(rng.integers(0, 365 * 24, n))
    signup = pd.Timestamp("2024-01-01") + pd.to_timedelta(hours, unit="h")
    label = np.where(churn, "yes", "no").astype(object)
    label[rng.choice(n, 25, replace=False)] = None
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "signup_time": signup.strftime("%Y-%m-%d %H:%M:%S"),
            "age": age,
            "plan": plan,
            "tenure_months": tenure.round(1),
            "active": active,
            "country": "FR",
            "notes": [f"called about invoice {rng.integers(10**9)}" for _ in range(n)],
            "empty": np.nan,
            "refund_amount": np.where(churn, rng.uniform(5, 50, n), 0.0).round(2),
            "churned": label,
        }
    )


def test_init_data_on_a_mixed_csv_then_run(tmp_path: Path) -> None:
    mixed_frame().to_csv(tmp_path / "customers.csv", index=False)
    shown = cli(tmp_path, "init", "churn", "--data", "customers.csv", "--target", "churned")
    assert "refund_amount" in shown.stdout  # the person is told about the suspect
    text = (tmp_path / "churn" / "mlcycle.yaml").read_text()
    spec = yaml.safe_load(text)
    problem = spec["problem"]
    assert (problem["task"], problem["positive_label"]) == ("binary", "yes")
    assert (problem["id_column"], problem["timestamp_column"]) == ("customer_id", "signup_time")
    assert spec["prepare"]["split"]["strategy"] == "time"
    assert spec["data"]["source"]["path"] == str(tmp_path / "customers.csv")
    excluded = spec["data"]["features"]["exclude"]
    assert {"refund_amount", "country", "empty", "notes"} <= set(excluded)
    # Excluded with a comment that says why, right above the entry.
    comment = text.split('- "refund_amount"')[0].rsplit('- "', 1)[-1]  # since the entry before
    assert "# CHECK LEAKAGE SUSPECT (by name): its name ('refund')" in comment
    assert spec["data"]["transforms"] == [{"sql": 'SELECT * FROM raw WHERE "churned" IS NOT NULL'}]

    project = tmp_path / "churn"
    cli(project, "run")
    versions = json.loads(cli(project, "models", "list", "--json").stdout)["churn"]
    assert [v["version"] for v in versions] == [1]
    shown = json.loads(cli(project, "models", "show", "churn/1", "--json").stdout)
    assert "refund_amount" not in shown["features"] and "age" in shown["features"]
    assert shown["metrics"]["roc_auc"] > 0.6

    # Running init again does not overwrite the spec without --force.
    again = cli(tmp_path, "init", "churn", "--data", "customers.csv", "-t", "churned", check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


# A binary spec is run end to end by the mixed-CSV test above; here only its inference
# is checked, which keeps the suite's time for the tasks nothing else runs.
@pytest.mark.parametrize(
    ("loader", "task", "metric", "run"),
    [
        (load_breast_cancer, "binary", "roc_auc", False),
        (load_diabetes, "regression", "rmse", True),
        (load_wine, "multiclass", "log_loss", True),
    ],
    ids=["breast_cancer", "diabetes", "wine"],
)
def test_init_data_on_sklearn_datasets_then_run(
    tmp_path: Path, loader: object, task: str, metric: str, run: bool
) -> None:
    bunch = loader(as_frame=True)  # type: ignore[operator]
    frame = bunch.frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    cli(tmp_path, "init", "proj", "--data", "data.parquet", "--target", "target", "--json")
    spec = yaml.safe_load((tmp_path / "proj" / "mlcycle.yaml").read_text())
    assert (spec["problem"]["task"], spec["problem"]["primary_metric"]) == (task, metric)
    expected_split = "random" if task == "regression" else "stratified"
    assert spec["prepare"]["split"]["strategy"] == expected_split
    if not run:
        return
    cli(tmp_path / "proj", "run")
    versions = json.loads(cli(tmp_path / "proj", "models", "list", "--json").stdout)
    assert [v["version"] for v in versions["proj"]] == [1]


def test_init_data_errors_are_exit_2(tmp_path: Path) -> None:
    mixed_frame(200).to_csv(tmp_path / "c.csv", index=False)
    cases = [
        (("--data", "c.csv"), "--data needs --target"),
        (("--data", "c.csv", "--target", "nope"), "target column 'nope' not found"),
        (("--data", "missing.csv", "--target", "churned"), "missing.csv"),
        (("--data", "sqlite:///x.db", "--target", "y"), "needs the query"),
        (("--data", "c.csv", "--target", "churned", "--example", "flights"), "cannot be combined"),
    ]
    for args, message in cases:
        result = cli(tmp_path, "init", "p", *args, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert not (tmp_path / "p" / "mlcycle.yaml").exists()


def test_init_data_from_a_sql_query(tmp_path: Path) -> None:
    import sqlite3

    frame = mixed_frame(300).drop(columns=["empty"])
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        frame.to_sql("customers", conn, index=False)
    cli(
        tmp_path,
        "init",
        "p",
        "--data",
        "sqlite:///shop.db",
        "--query",
        "SELECT * FROM customers",
        "--target",
        "churned",
    )
    source = yaml.safe_load((tmp_path / "p" / "mlcycle.yaml").read_text())["data"]["source"]
    # Relative to where the command ran, written so that it resolves from the spec's folder.
    assert source == {"url": f"sqlite:///{tmp_path / 'shop.db'}", "sql": "SELECT * FROM customers"}
