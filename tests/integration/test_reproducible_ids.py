"""Identical retrains give identical ids: timings stay out of an artifact's content hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from mlcycle.pipeline.project import Project


def _project(root: Path) -> Project:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["y"] = (X @ np.array([1.0, -0.5, 0.3]) + rng.normal(scale=0.5, size=600)) > 0
    frame.to_parquet(root / "data.parquet", index=False)
    spec = {
        "project": "repro",
        "problem": {"task": "binary", "target": "y", "positive_label": True},
        "data": {"source": {"path": "data.parquet"}},
        "prepare": {"split": {"strategy": "random"}},
        "train": {
            "seed": 7,
            "baseline": "prior",
            "candidates": [{"name": "lr", "estimator": "logistic_regression"}],
        },
    }
    (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec))
    return Project.load(root)


def test_two_forced_trainings_give_the_same_model_id(tmp_path: Path) -> None:
    project = _project(tmp_path)
    try:
        first = project.run(until="train")
        again = project.run(until="train", force=True)
        assert [s.status for s in again.steps][-1] == "ran"  # really trained twice
        assert again.outputs["model"] == first.outputs["model"]
        assert again.outputs["baseline"] == first.outputs["baseline"]
        model_id = first.outputs["model"]
        # The timing is still there for people (the SQL row), just not in the hashed files.
        assert project.store.record(model_id)["fit_seconds"] >= 0
        assert project.catalog.trained_model(model_id).fit_seconds >= 0
        on_disk = json.loads((project.store.path(model_id) / "record.json").read_text())
        assert "fit_seconds" not in on_disk
    finally:
        project.close()


def test_a_bundle_record_keeps_run_and_host_out_of_its_hash(tmp_path: Path) -> None:
    from mlcycle.bundle import Bundle

    project = _project(tmp_path)
    try:
        catalog = project.catalog
        ids = []
        for run_id, host in (("run-a", "host-a"), ("run-b", "host-b")):
            with catalog.new_bundle() as bundle:
                assert isinstance(bundle, Bundle)
                (bundle.folder / "payload.txt").write_text("same content")
                record = {"name": "repro", "run_id": run_id, "host": host}
                ids.append(catalog.save_bundle(bundle, record=record, parents={}))
        assert ids[0] == ids[1]
        assert project.store.record(ids[0])["run_id"] == "run-a"  # the first build's
    finally:
        project.close()
