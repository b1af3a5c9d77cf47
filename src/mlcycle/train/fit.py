"""Fit baselines and candidates.

Example:
    >>> result = fit_candidate(train_df, spec.train.candidates[0], schema=schema,
    ...                        problem=spec.problem, seed=42)
    >>> result.model.predict_proba(valid_df[result.features])
"""

from __future__ import annotations

import importlib
import inspect
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.pipeline import Pipeline

from mlcycle.errors import BadInput
from mlcycle.schema import Schema
from mlcycle.spec import Candidate, Problem
from mlcycle.train.features import build_preprocessor, model_features

FAMILIES: dict[str, dict[str, str]] = {
    "hist_gradient_boosting": {
        "classifier": "sklearn.ensemble.HistGradientBoostingClassifier",
        "regressor": "sklearn.ensemble.HistGradientBoostingRegressor",
    },
    "logistic_regression": {"classifier": "sklearn.linear_model.LogisticRegression"},
    "linear_regression": {"regressor": "sklearn.linear_model.Ridge"},
    "random_forest": {
        "classifier": "sklearn.ensemble.RandomForestClassifier",
        "regressor": "sklearn.ensemble.RandomForestRegressor",
    },
}


@dataclass
class FitResult:
    model: Pipeline
    name: str
    estimator: str
    params: dict[str, Any]
    features: list[str]
    classes: list[Any] | None
    fit_seconds: float


def target_values(df: pd.DataFrame, problem: Problem) -> np.ndarray:
    y = df[problem.target]
    if problem.task == "regression":
        return y.to_numpy(dtype="float64")
    return y.to_numpy()


def _estimator_class(candidate: Candidate, task: str) -> tuple[str, type[BaseEstimator]]:
    role = "regressor" if task == "regression" else "classifier"
    path = candidate.estimator
    if path in FAMILIES:
        if role not in FAMILIES[path]:
            raise BadInput(
                f"candidate '{candidate.name}': family '{path}' has no {role}",
                f"the task is {task}",
                f"use one of: {', '.join(f for f, r in FAMILIES.items() if role in r)}",
            )
        path = FAMILIES[path][role]
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name) if module_name else None
    except (ImportError, AttributeError):
        cls = None
    if cls is None or not (inspect.isclass(cls) and hasattr(cls, "fit")):
        raise BadInput(
            f"candidate '{candidate.name}': unknown estimator '{candidate.estimator}'",
            "it is neither a built-in family nor an importable scikit-learn estimator class",
            f"use a family ({', '.join(FAMILIES)}) or a dotted path like "
            "sklearn.ensemble.ExtraTreesClassifier",
        )
    return path, cls


def _check_params(candidate: Candidate, cls: type[BaseEstimator]) -> None:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(candidate.params) - accepted)
    if unknown:
        raise BadInput(
            f"candidate '{candidate.name}': {cls.__name__} has no parameter(s) {unknown}",
            "train.candidates[].params are passed to the estimator's constructor",
            f"allowed: {', '.join(sorted(accepted))}",
        )


def _check_target(y: np.ndarray, problem: Problem) -> None:
    if problem.task != "regression" and len(pd.unique(y)) < 2:
        raise BadInput(
            f"target '{problem.target}' has a single class in the training rows",
            "a classifier needs at least two classes to learn from",
            "check the data filter and the split",
        )


def fit_candidate(
    train: pd.DataFrame, candidate: Candidate, *, schema: Schema, problem: Problem, seed: int
) -> FitResult:
    """Fit one candidate (preprocessing + estimator) on the training rows."""
    path, cls = _estimator_class(candidate, problem.task)
    _check_params(candidate, cls)
    features = model_features(schema)
    empty = [c for c in features if train[c].isna().all()]
    if empty:
        raise BadInput(
            f"feature(s) {empty} are entirely null in the training rows",
            "a model cannot learn from a column with no values",
            "exclude them in data.features.exclude or fix the data",
        )
    y = target_values(train, problem)
    _check_target(y, problem)
    params = dict(candidate.params)
    if "random_state" in inspect.signature(cls.__init__).parameters:
        params.setdefault("random_state", seed)
    family = candidate.estimator if candidate.estimator in FAMILIES else "custom"
    pipeline = Pipeline(
        [
            ("prep", build_preprocessor(schema, features, family)),
            ("model", cls(**params)),
        ]
    )
    start = time.perf_counter()
    pipeline.fit(train[features], y)
    classes = _classes(pipeline)
    return FitResult(
        pipeline, candidate.name, path, params, features, classes, time.perf_counter() - start
    )


def fit_baseline(
    train: pd.DataFrame, *, strategy: str, schema: Schema, problem: Problem
) -> FitResult:
    """The naive model every candidate must beat: prior class or mean."""
    if strategy == "auto":
        strategy = "mean" if problem.task == "regression" else "prior"
    estimator: BaseEstimator
    if problem.task == "regression":
        if strategy not in ("mean", "median"):
            raise BadInput(
                f"baseline '{strategy}' does not fit a regression",
                "",
                "use train.baseline: mean or median",
            )
        estimator = DummyRegressor(strategy=strategy)
    else:
        if strategy not in ("prior", "most_frequent"):
            raise BadInput(
                f"baseline '{strategy}' does not fit a classifier",
                "",
                "use train.baseline: prior or most_frequent",
            )
        estimator = DummyClassifier(strategy=strategy)
    features = model_features(schema)
    y = target_values(train, problem)
    _check_target(y, problem)
    pipeline = Pipeline([("model", estimator)])
    start = time.perf_counter()
    pipeline.fit(train[features], y)
    return FitResult(
        pipeline,
        "baseline",
        f"dummy:{strategy}",
        {"strategy": strategy},
        features,
        _classes(pipeline),
        time.perf_counter() - start,
    )


def _classes(pipeline: Pipeline) -> list[Any] | None:
    classes = getattr(pipeline, "classes_", None)
    return None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]
