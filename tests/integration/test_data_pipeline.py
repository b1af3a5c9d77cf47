"""The pipeline's data steps on a SQL source with transforms and expectations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlcycle.data.landing import list_partitions, status_of
from mlcycle.pipeline.project import Project
from mlcycle.store import make_engine


def _rows(start: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "id": np.arange(start, start + n),
            "ts": pd.date_range("2024-01-01", periods=start + n, freq="h")[start:].astype(str),
            "x": x,
            "km": rng.uniform(-10, 100, size=n),
            "y": (x + rng.normal(scale=0.5, size=n) > 0).astype(int),
        }
    )


def _project(tmp_path: Path, transforms: list[dict]) -> Path:
    spec = {
        "project": "sqlp",
        "problem": {"task": "binary", "target": "y", "id_column": "id", "timestamp_column": "ts"},
        "data": {
            "source": {"sql": "SELECT * FROM events", "url": "sqlite:///src.db", "watermark": "ts"},
            "transforms": transforms,
            "expectations": [{"check": "range", "column": "km", "min": 0, "severity": "error"}],
        },
    }
    (tmp_path / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "mlcycle.yaml"


def test_sql_source_transforms_and_a_cached_second_run(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'src.db'}")
    _rows(0, 300).to_sql("events", engine, index=False)
    spec = _project(tmp_path, [{"sql": "SELECT * FROM raw WHERE km >= 0"}])
    project = Project.load(spec)
    try:
        first = project.run(until="validate")
        assert [s.status for s in first.steps] == ["ran", "ran"]
        dataset = first.outputs["dataset"]
        assert status_of(project.store, dataset)["status"] == "valid"
        again = project.run(until="validate")
        assert [s.status for s in again.steps] == ["cached", "cached"]

        # New rows in the table: only they are read, and a new version is built.
        _rows(300, 100).to_sql("events", engine, index=False, if_exists="append")
        third = project.run(until="validate")
        assert third.steps[0].status == "ran" and third.steps[0].summary["new_rows"] == 100
        assert third.outputs["dataset"] != dataset
        # The new version has a new id, so validate's cache key changed: it must run
        # again on the new version (a cached report would vouch for the old one).
        assert third.steps[1].status == "ran"
        assert third.outputs["validation"] != first.outputs["validation"]
        assert status_of(project.store, third.outputs["dataset"])["status"] == "valid"
        assert [p.rows for p in list_partitions(project.store, "main")] == [300, 100]
    finally:
        project.close()
        engine.dispose()


def test_same_content_gives_the_same_version_id(tmp_path: Path) -> None:
    ids = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        engine = make_engine(f"sqlite:///{folder / 'src.db'}")
        _rows(0, 200).to_sql("events", engine, index=False)
        engine.dispose()
        project = Project.load(_project(folder, [{"sql": "SELECT * FROM raw WHERE km >= 0"}]))
        try:
            ids.append(project.run(until="ingest").outputs["dataset"])
        finally:
            project.close()
    assert ids[0] == ids[1]


def test_an_expectation_error_quarantines_the_version(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'src.db'}")
    _rows(0, 200).to_sql("events", engine, index=False)
    engine.dispose()
    project = Project.load(_project(tmp_path, []))  # no filter: negative km reach validation
    try:
        try:
            project.run(until="split")
        except Exception as exc:  # StepFailed
            assert "km" in str(exc) and "quarantined" in str(exc)
        else:
            raise AssertionError("validation should have failed")
        parts = list_partitions(project.store, "main")
        assert [p.status for p in parts] == ["quarantined"]
        # Nothing usable is left, so the next run refuses rather than train on it.
        try:
            project.run(until="split")
        except Exception as exc:
            assert "quarantined" in str(exc)
        else:
            raise AssertionError("a quarantined source must not be split")
    finally:
        project.close()


def _mixed_project(folder: Path, late_rows: int) -> Path:
    """A CSV whose numeric 'delay' holds "late" in its last ``late_rows`` rows, and a
    model test that adds to 'delay' (it crashed on text: issue #13, item 13)."""
    n = 3000
    rng = np.random.default_rng(0)
    delay = rng.integers(-20, 120, size=n)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "delay": delay.astype(object),
            "x": rng.normal(size=n),
            "y": (delay > 30).astype(int),
        }
    )
    if late_rows:
        frame.loc[n - late_rows :, "delay"] = "late"
    frame.to_csv(folder / "d.csv", index=False)
    spec = {
        "project": "mixed",
        "problem": {"task": "binary", "target": "y", "id_column": "id"},
        "prepare": {"split": {"strategy": "random"}},
        "data": {"source": {"path": "d.csv"}},
        "train": {
            "model_tests": {"directional": [{"column": "delay", "delta": 30, "max_fraction": 1}]}
        },
    }
    (folder / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return folder / "mlcycle.yaml"


def test_a_number_column_with_text_in_its_last_rows_is_numeric_and_reported(
    tmp_path: Path,
) -> None:
    from mlcycle.errors import StepFailed
    from mlcycle.schema import Schema

    project = Project.load(_mixed_project(tmp_path, late_rows=100))
    try:
        try:
            project.run(until="train")
        except StepFailed as exc:
            # A clear validation finding (exit 2), not a TypeError inside training.
            assert exc.step == "validate" and exc.exit_code == 2, exc.message
            assert "column 'delay' should be numeric but 100 of 3000 value(s) are not numbers" in (
                exc.message
            )
            assert "'late'" in exc.message
        else:
            raise AssertionError("the 'late' values should stop the pipeline at validation")
        contract = Schema.from_yaml(tmp_path / "schema.yaml").column("delay")
        assert contract.kind == "numeric" and contract.categories is None
        assert contract.nullable  # so nulls in place of "late" are an accepted fix
        assert [p.status for p in list_partitions(project.store, "main")] == ["quarantined"]

        # The data engineer decides: "late" becomes a missing delay in the source.
        text = (tmp_path / "d.csv").read_text().replace(",late,", ",,")
        (tmp_path / "d.csv").write_text(text)
        done = project.run(until="train")
        assert [s.status for s in done.steps][-1] == "ran"
        names = [c.name for c in project.catalog.model_tests(done.outputs["model_tests"]).checks]
        assert "directional:delay+30" in names
    finally:
        project.close()
