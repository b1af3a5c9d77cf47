"""Small real datasets for the training tests (scikit-learn's bundled data, and generated)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from mlcycle.data.infer import infer_schema
from mlcycle.schema import Schema
from mlcycle.spec import Features, Problem

CANCER = Problem(task="binary", target="malignant", positive_label=True, primary_metric="roc_auc")


def cancer() -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """Breast cancer (569 rows): 70% train, 30% validation, and its inferred schema."""
    raw = load_breast_cancer(as_frame=True)
    df = raw.frame.rename(columns=lambda c: c.replace(" ", "_"))
    df["malignant"] = df.pop("target") == 0
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    schema = infer_schema(df, CANCER, Features())
    cut = int(len(df) * 0.7)
    return df.iloc[:cut].reset_index(drop=True), df.iloc[cut:].reset_index(drop=True), schema


def mixed(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, Problem, Schema]:
    """A binary task with a numeric driver, a category and noise, ordered in time."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "delay": rng.normal(10, 20, n),
            "noise": rng.normal(0, 1, n),
            "carrier": rng.choice(["AA", "UA", "DL"], n),
            "when": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        }
    )
    df["late"] = (df["delay"] + rng.normal(0, 10, n)) > 15
    problem = Problem(task="binary", target="late", positive_label=True, timestamp_column="when")
    return df, problem, infer_schema(df, problem, Features())


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(y).astype(bool), scores))
