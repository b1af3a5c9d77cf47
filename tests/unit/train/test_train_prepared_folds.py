"""Tuning reuses each fold's fitted preprocessing: same scores, one preprocessing fit per fold."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from train_fixtures import auc, mixed

from mlcycle.spec import Candidate, CrossValidation
from mlcycle.train.cv import PreparedFolds, cross_validate, folds
from mlcycle.train.fit import build_pipeline

FEATURES = ["delay", "noise", "carrier"]


def _pipeline(C: float, schema: Any, problem: Any) -> Pipeline:
    candidate = Candidate(name="lr", estimator="logistic_regression", params={"C": C})
    pipeline, _, _ = build_pipeline(candidate, schema=schema, problem=problem, seed=0)
    return pipeline


def _cv(pipeline: Pipeline, df: Any, problem: Any, split: Any, prepared: Any) -> Any:
    return cross_validate(
        pipeline,
        df,
        cv=CrossValidation(kind="stratified", folds=4),
        problem=problem,
        features=FEATURES,
        metric=auc,
        seed=0,
        split=split,
        prepared=prepared,
    )


def test_prepared_folds_give_the_same_scores_and_fit_preprocessing_once(monkeypatch: Any) -> None:
    df, problem, schema = mixed(300)
    split = folds(df, CrossValidation(kind="stratified", folds=4), problem=problem, seed=0)
    prepared = PreparedFolds()
    trials = (0.1, 1.0, 10.0)  # only the estimator's C changes between trials
    plain = [_cv(_pipeline(C, schema, problem), df, problem, split, None) for C in trials]
    fits = {"n": 0}
    original = ColumnTransformer.fit_transform

    def counting(self: ColumnTransformer, *args: Any, **kwargs: Any) -> Any:
        fits["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ColumnTransformer, "fit_transform", counting)
    for C, expected in zip(trials, plain, strict=True):
        reused = _cv(_pipeline(C, schema, problem), df, problem, split, prepared)
        assert reused.fold_scores == expected.fold_scores
        np.testing.assert_array_equal(reused.oof, expected.oof)
    assert fits["n"] == 4  # one preprocessing fit per fold, for all three trials


def test_changed_preprocessing_is_not_reused() -> None:
    df, problem, schema = mixed(300)
    split = folds(df, CrossValidation(kind="stratified", folds=4), problem=problem, seed=0)
    prepared = PreparedFolds()
    first = _pipeline(1.0, schema, problem)
    other = _pipeline(1.0, schema, problem)
    step = other.steps[0][0]
    other.set_params(**{f"{step}__remainder": "passthrough"})
    assert prepared.key(first) != prepared.key(other)
    _cv(first, df, problem, split, prepared)
    plain = _cv(
        _pipeline(1.0, schema, problem).set_params(**{f"{step}__remainder": "passthrough"}),
        df,
        problem,
        split,
        None,
    )
    reused = _cv(other, df, problem, split, prepared)
    assert reused.fold_scores == plain.fold_scores
    assert prepared.key(Pipeline([("only", first.steps[-1][1])])) is None
