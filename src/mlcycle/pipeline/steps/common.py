"""Helpers the steps share: loading inputs from the store and saving models."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from mlcycle.artifacts import DatasetVersion, TrainedModel
from mlcycle.pipeline.project import Project

ML_LIBS = ("scikit-learn", "numpy", "pandas", "scipy")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "absent"


def load_dataset(project: Project, artifact_id: str) -> tuple[DatasetVersion, Path]:
    record = DatasetVersion.model_validate(project.store.record(artifact_id))
    return record, project.store.path(artifact_id) / "data.parquet"


def load_split(project: Project, splits_id: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(project.store.path(splits_id) / f"{name}.parquet")


def put_model(project: Project, fitted: Any, record: TrainedModel, parents: dict[str, str]) -> str:
    with project.store.staging() as folder:
        joblib.dump(fitted, folder / "model.joblib")
        return project.store.put(folder, kind="model", record=record, parents=parents)


def score_model(
    project: Project, model_id: str, rows: pd.DataFrame
) -> tuple[np.ndarray, TrainedModel]:
    from mlcycle.evaluate import scores_for

    record = TrainedModel.model_validate(project.store.record(model_id))
    model = joblib.load(project.store.path(model_id) / "model.joblib")
    return scores_for(
        project.spec.problem.task, model, rows[record.features], project.spec.problem.positive_label
    ), record
