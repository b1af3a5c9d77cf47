"""A quarantined ingest stays in view: `mlcycle run` names it, `mlcycle data accept` takes it
back after the contract is edited (re-validated, never blindly), through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mlcycle.cli.main import app
from mlcycle.data.landing import list_partitions
from mlcycle.store import Store

CLEAN_ENV: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MLCYCLE_")}


def cli(cwd: Path, *args: str) -> tuple[int, str, str]:
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        done = CliRunner().invoke(app, list(args), env=CLEAN_ENV)
    finally:
        os.chdir(previous)
    if "--json" in args:
        return done.exit_code, done.stdout, done.stderr
    # Rich wraps at the terminal's width: compare words, not line breaks.
    return done.exit_code, " ".join(done.stdout.split()), " ".join(done.stderr.split())


def _rows(start: int, n: int, airports: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "id": np.arange(start, start + n),
            "ts": pd.date_range("2024-01-01", periods=start + n, freq="h")[start:].astype(str),
            "x": x.round(4),
            "origin": rng.choice(airports, size=n),
            "y": (x + rng.normal(scale=0.5, size=n) > 0).astype(int),
        }
    )


def _statuses(project: Path) -> list[str]:
    store = Store.open(project)
    try:
        return [p.status for p in list_partitions(store, "main")]
    finally:
        store.close()


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    spec = {
        "project": "quar",
        "problem": {"task": "binary", "target": "y", "id_column": "id", "timestamp_column": "ts"},
        "data": {"source": {"path": "data.csv", "watermark": "ts"}},
    }
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    first = _rows(0, 300, ["JFK", "LGA", "EWR"])
    first.to_csv(tmp_path / "data.csv", index=False)
    code, _, err = cli(tmp_path, "data", "ingest")
    assert code == 0, err
    # One unseen airport code in the new rows quarantines the whole partition.
    new = _rows(300, 50, ["JFK", "LGA"])
    new.loc[new.index[3], "origin"] = "BOS"
    pd.concat([first, new]).to_csv(tmp_path / "data.csv", index=False)
    code, _, err = cli(tmp_path, "data", "ingest")
    assert code == 2 and "BOS" in err and "mlcycle data accept" in err
    assert _statuses(tmp_path) == ["landed", "quarantined"]
    return tmp_path


def test_run_names_the_quarantined_partition_why_and_how_to_accept(project: Path) -> None:
    code, out, err = cli(project, "run", "--until", "validate")
    assert code == 0, err
    assert "quarantined" in out and "50 rows" in out
    assert "origin" in out and "BOS" in out  # why
    assert "mlcycle data accept" in out and "schema.yaml" in out  # how
    code, out, _ = cli(project, "run", "--until", "validate", "--json")
    ingest = json.loads(out)["steps"][0]
    assert ingest["summary"]["quarantined"] == 1 and len(ingest["summary"]["quarantine"]) == 1
    # Reused from the cache, the run still says so.
    code, out, _ = cli(project, "run", "--until", "validate")
    assert code == 0 and "mlcycle data accept" in out


def test_accept_revalidates_against_the_edited_contract(project: Path) -> None:
    versions = json.loads(cli(project, "data", "versions", "--json")[1])
    invalid = next(v["id"] for v in versions if v["status"] == "invalid")

    # The contract still refuses BOS: nothing is accepted, no traceback (the partition
    # named by its ingested_at= folder, as `mlcycle run` prints it).
    store = Store.open(project)
    try:
        folder = list_partitions(store, "main")[1].path.rsplit("/", 1)[0]
    finally:
        store.close()
    code, _, err = cli(project, "data", "accept", folder, "--reason", "new route")
    assert code == 2 and "BOS" in err and "Traceback" not in err
    assert _statuses(project) == ["landed", "quarantined"]

    # A reason is required.
    code, _, _ = cli(project, "data", "accept", invalid[:12])
    assert code == 2

    schema = yaml.safe_load((project / "schema.yaml").read_text())
    origin = next(c for c in schema["columns"] if c["name"] == "origin")
    origin["categories"] = sorted([*origin["categories"], "BOS"])
    (project / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))

    code, out, err = cli(project, "data", "accept", invalid[:12], "--reason", "new route", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["accepted"] and done["status"] == "valid"
    assert _statuses(project) == ["landed", "landed"]
    store = Store.open(project)
    try:
        audit = list_partitions(store, "main")[1].details["accepted"][-1]
    finally:
        store.close()
    assert audit["reason"] == "new route" and audit["by"] and audit["at"]

    code, out, err = cli(project, "run", "--until", "validate", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert "quarantine" not in run["steps"][0]["summary"]
    assert run["steps"][0]["summary"]["rows"] == 350

    # Nothing left to accept: a clear error.
    code, _, err = cli(project, "data", "accept", invalid[:12], "--reason", "again")
    assert code == 2 and "not quarantined" in err
