"""A small binary project for the loop's tests, and live traffic written as `serve --shadow` does.

Traffic is scored by the real bundles of the registered versions and written to the
prediction log with the serving contract (role ``champion`` for the answering version,
role ``shadow`` for the other, the same ``request_id`` and ``row_id``); ``broken``
turns one side's probabilities around, the way a model with a serving-time bug would.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlcycle import predlog
from mlcycle.monitor.labels import ingest_labels
from mlcycle.pipeline.project import Project

NAME = "synth"


def data(seed: int, n: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    logit = X @ np.array([1.2, 0.8, 0.5, 0.3]) - 0.3
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(1, 5)])
    df["rid"] = [f"r{seed}-{i}" for i in range(n)]
    df["label"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    return df


def spec(mode: str = "shadow", **loop: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "mode": mode,
        "policy": {"cooldown": "1s"},
        "shadow": {"min_rows": 200, "min_duration": "1m"},
        "watch": {"min_rows": 200, "duration": "1m", "max_rollbacks": 2},
        "poll": "1s",
    }
    section.update(loop)
    return {
        "project": NAME,
        "problem": {
            "task": "binary",
            "target": "label",
            "positive_label": True,
            "primary_metric": "roc_auc",
            "id_column": "rid",
            "latency_budget_ms": 2000,
        },
        "data": {"source": {"path": "data.parquet"}},
        "prepare": {"split": {"strategy": "random"}},
        "train": {
            "seed": 42,
            "baseline": "prior",
            "candidates": [{"name": "lr", "estimator": "logistic_regression"}],
        },
        "gates": {"champion": {"mode": "non_inferiority", "tolerance": 0.05}, "infra_check": False},
        "evaluate": {"bootstrap": 100},
        "loop": section,
    }


_TEMPLATE: list[Path] = []


def _template() -> Path:
    """A project with its first champion, trained once per test session (SQLite store)."""
    if not _TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="mlcycle-loop-"))
        atexit.register(shutil.rmtree, root, True)
        data(1).to_parquet(root / "data.parquet", index=False)
        (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec()))
        project = Project.load(root)
        project.run()
        project.close()  # checkpoints the SQLite WAL, so a copy of the folder is whole
        _TEMPLATE.append(root)
    return _TEMPLATE[0]


def make_project(root: Path, **loop: Any) -> Project:
    """A project in ``root`` whose first champion (v1) is trained, with this loop section.

    On SQLite the folder is a copy of a session template (the store lives in it);
    with MLCYCLE_STORE_URL set, the first model is trained here.
    """
    if os.environ.get("MLCYCLE_STORE_URL"):
        data(1).to_parquet(root / "data.parquet", index=False)
        (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec(**loop)))
        project = Project.load(root)
        project.run()
    else:
        shutil.copytree(_template(), root, dirs_exist_ok=True)
        (root / "mlcycle.yaml").write_text(yaml.safe_dump(spec(**loop)))
        project = Project.load(root)
    assert project.registry.alias_version(NAME, "champion") == 1
    return project


def add_data(root: Path, seed: int = 2, n: int = 600) -> None:
    """More rows in the source: the next retrain makes a new model."""
    old = pd.read_parquet(root / "data.parquet")
    pd.concat([old, data(seed, n)], ignore_index=True).to_parquet(root / "data.parquet")


def _proba(project: Project, version: int, rows: pd.DataFrame) -> np.ndarray:
    _, bundle = project.registry.bundle(f"{NAME}/{version}")
    model = bundle.load_model()
    features = bundle.meta().features
    proba = model.predict_proba(rows[features])
    classes = list(model.classes_)
    return np.asarray(proba[:, classes.index(True)], dtype="float64")


def traffic(
    project: Project,
    rows: pd.DataFrame,
    *,
    served: int,
    shadow: int | None,
    at: datetime,
    broken: str | None = None,
    shadow_share: float = 1.0,
) -> None:
    """Log ``rows`` as answered by version ``served`` and shadowed by ``shadow``.

    ``broken`` ("served" or "shadow") turns that side's probabilities around;
    ``shadow_share`` < 1 leaves the other rows without a shadow row (shadow errors).
    """
    root = predlog.predictions_root(project.store.home)
    features = [f"x{i}" for i in range(1, 5)]
    request = [f"req-{uuid.uuid4().hex[:8]}" for _ in range(len(rows))]
    frames = []
    sides = [("champion", served)] + ([] if shadow is None else [("shadow", shadow)])
    for role, version in sides:
        p = _proba(project, version, rows)
        if broken == ("served" if role == "champion" else "shadow"):
            p = 1.0 - p
        frame = (
            rows[features]
            .reset_index(drop=True)
            .assign(
                request_id=request,
                ts=pd.Timestamp(at),
                model=NAME,
                model_version=version,
                role=role,
                row_id=rows["rid"].astype(str).to_numpy(),
                prediction=np.where(p >= 0.5, "True", "False"),
                probability=p,
            )
        )
        if role == "shadow" and shadow_share < 1.0:
            frame = frame.iloc[: int(len(frame) * shadow_share)]
        frames.append(frame)
    predlog.write_predictions(root, NAME, pd.concat(frames, ignore_index=True))


def labels(project: Project, rows: pd.DataFrame) -> None:
    """The ground truth of ``rows`` arrives."""
    ingest_labels(
        project.store,
        NAME,
        rows[["rid", "label"]],
        id_column="rid",
        label_column="label",
        known_ids=set(rows["rid"].astype(str)),
    )
