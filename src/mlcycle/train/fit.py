"""Fit baselines and candidates: a scikit-learn Pipeline (preprocessing + estimator).

Example:
    >>> result = fit_candidate(train_df, spec.train.candidates[0], schema=schema,
    ...                        problem=spec.problem, seed=42)
    >>> result.model.predict_proba(valid_df[result.features])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.pipeline import Pipeline

from mlcycle.errors import BadInput
from mlcycle.features import build_preprocessor, model_features
from mlcycle.schema import Schema
from mlcycle.spec import Candidate, Problem
from mlcycle.train.families import (
    FAMILIES,
    check_params,
    default_params,
    estimator_class,
    family_of,
)

__all__ = [
    "FAMILIES",
    "FitResult",
    "build_pipeline",
    "check_training_data",
    "fit_baseline",
    "fit_baselines",
    "fit_candidate",
    "predictions",
    "target_values",
]


@dataclass
class FitResult:
    model: Pipeline
    name: str
    estimator: str
    params: dict[str, Any]
    features: list[str]
    classes: list[Any] | None
    fit_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def target_values(df: pd.DataFrame, problem: Problem) -> np.ndarray:
    y = df[problem.target]
    if problem.task == "regression":
        return y.to_numpy(dtype="float64")
    return y.to_numpy()


def predictions(task: str, model: Any, X: Any, positive_label: Any = None) -> np.ndarray:
    """Binary: P(positive); multiclass: the probability matrix; regression: values."""
    if task == "regression":
        return np.asarray(model.predict(X), dtype="float64")
    proba = np.asarray(model.predict_proba(X), dtype="float64")
    if task == "binary":
        classes = list(model.classes_)
        col = classes.index(positive_label) if positive_label in classes else len(classes) - 1
        return proba[:, col]
    return proba


def check_training_data(
    train: pd.DataFrame, *, schema: Schema, problem: Problem, features: list[str] | None = None
) -> list[str]:
    """Refuse data no model can learn from; return the feature columns."""
    features = features if features is not None else model_features(schema)
    missing = [c for c in [*features, problem.target] if c not in train.columns]
    if missing:
        raise BadInput(
            f"column(s) {missing} are not in the training rows",
            "the schema names them as features or target",
            "check data.features and problem.target against the data",
        )
    if len(train) == 0:
        raise BadInput("no training rows", "the train split is empty", "check the data and split")
    empty = [c for c in features if train[c].isna().all()]
    if empty:
        raise BadInput(
            f"feature(s) {empty} are entirely null in the training rows",
            "a model cannot learn from a column with no values",
            "exclude them in data.features.exclude or fix the data",
        )
    y = target_values(train, problem)
    if problem.task != "regression" and len(pd.unique(y)) < 2:
        raise BadInput(
            f"target '{problem.target}' has a single class in the training rows",
            "a classifier needs at least two classes to learn from",
            "check the data filter and the split",
        )
    if problem.task == "regression" and np.isnan(y).any():
        raise BadInput(
            f"target '{problem.target}' has missing values in the training rows",
            "a regressor needs a value for every row",
            "drop those rows in a transform",
        )
    return features


def build_pipeline(
    candidate: Candidate,
    *,
    schema: Schema,
    problem: Problem,
    seed: int,
    features: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Pipeline, str, dict[str, Any]]:
    """An unfitted pipeline for a candidate: (pipeline, estimator path, estimator params)."""
    path, cls = estimator_class(candidate, problem.task)
    check_params(candidate, cls)
    params = default_params(candidate, cls, seed) | (overrides or {})
    features = features if features is not None else model_features(schema)
    try:
        estimator = cls(**params)
    except (TypeError, ValueError) as exc:
        raise BadInput(
            f"candidate '{candidate.name}': {cls.__name__}({params}) cannot be built",
            str(exc),
            "fix train.candidates[].params",
        ) from exc
    pipeline = Pipeline(
        [
            ("prep", build_preprocessor(schema, features, family_of(candidate))),
            ("model", estimator),
        ]
    )
    return pipeline, path, params


def fit_candidate(
    train: pd.DataFrame,
    candidate: Candidate,
    *,
    schema: Schema,
    problem: Problem,
    seed: int,
    overrides: dict[str, Any] | None = None,
) -> FitResult:
    """Fit one candidate (preprocessing + estimator) on the training rows."""
    features = check_training_data(train, schema=schema, problem=problem)
    pipeline, path, params = build_pipeline(
        candidate, schema=schema, problem=problem, seed=seed, features=features, overrides=overrides
    )
    start = time.perf_counter()
    try:
        pipeline.fit(train[features], target_values(train, problem))
    except (TypeError, ValueError) as exc:
        raise BadInput(
            f"candidate '{candidate.name}' failed to fit",
            f"{type(exc).__name__}: {exc}",
            "check its params (and search space) against the estimator's documentation",
        ) from exc
    return FitResult(
        pipeline,
        candidate.name,
        path,
        params,
        features,
        _classes(pipeline),
        time.perf_counter() - start,
    )


BASELINES = {
    "binary": ("prior", "most_frequent"),
    "multiclass": ("prior", "most_frequent"),
    "regression": ("mean", "median", "persistence"),
}


def fit_baseline(
    train: pd.DataFrame, *, strategy: str, schema: Schema, problem: Problem
) -> FitResult:
    """A naive model every candidate must beat: prior/majority class, mean/median, or
    persistence (the last value of a time-ordered target)."""
    if strategy == "auto":
        strategy = "mean" if problem.task == "regression" else "prior"
    if strategy not in BASELINES[problem.task]:
        raise BadInput(
            f"baseline '{strategy}' does not fit a {problem.task} task",
            "",
            f"use train.baseline: {' or '.join(BASELINES[problem.task])}",
        )
    features = check_training_data(train, schema=schema, problem=problem)
    y = target_values(train, problem)
    estimator: BaseEstimator
    params: dict[str, Any] = {"strategy": strategy}
    if strategy == "persistence":
        order = (
            np.argsort(train[problem.timestamp_column].to_numpy(), kind="stable")
            if problem.timestamp_column and problem.timestamp_column in train.columns
            else np.arange(len(train))
        )
        last = float(y[order[-1]])
        estimator = DummyRegressor(strategy="constant", constant=last)
        params["last_value"] = last
    elif problem.task == "regression":
        estimator = DummyRegressor(strategy=strategy)
    else:
        estimator = DummyClassifier(strategy=strategy)
    pipeline = Pipeline([("model", estimator)])
    start = time.perf_counter()
    pipeline.fit(train[features], y)
    return FitResult(
        pipeline,
        "baseline" if strategy in ("prior", "mean") else f"baseline_{strategy}",
        f"dummy:{strategy}",
        params,
        features,
        _classes(pipeline),
        time.perf_counter() - start,
    )


def fit_baselines(train: pd.DataFrame, *, schema: Schema, problem: Problem) -> dict[str, FitResult]:
    """Every baseline that fits the task (persistence only for time-ordered rows)."""
    strategies = [
        s
        for s in BASELINES[problem.task]
        if s != "persistence" or problem.timestamp_column is not None
    ]
    return {s: fit_baseline(train, strategy=s, schema=schema, problem=problem) for s in strategies}


def _classes(pipeline: Pipeline) -> list[Any] | None:
    classes = getattr(pipeline, "classes_", None)
    return None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]
