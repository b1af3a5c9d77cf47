"""Cross-validation: k-fold, stratified, group and time-series splitters over the training rows.

Hyperparameters are fixed across the folds of one evaluation; each fold fits a
fresh clone of the pipeline (preprocessing included) on its training part only.
Out-of-fold predictions are kept (NaN for rows a time-series split never
validates on).

Example:
    >>> result = cross_validate(pipeline, train_df, cv=CrossValidation(folds=5),
    ...                         problem=problem, features=features, metric=auc, seed=42)
    >>> result.mean, result.fold_scores
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit
from sklearn.pipeline import Pipeline

from mlcycle.errors import BadInput
from mlcycle.spec import CrossValidation, Problem
from mlcycle.train.fit import predictions, target_values

# metric(y_true, scores) -> float, where scores come from fit.predictions.
Metric = Callable[[np.ndarray, np.ndarray], float]
# on_fold(fold index, running mean of the scores so far): raise to stop (pruning).
FoldCallback = Callable[[int, float], None]


@dataclass
class CVResult:
    fold_scores: list[float]
    oof: np.ndarray  # binary/regression: (n,), multiclass: (n, k); NaN where never validated

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))


def folds(
    train: pd.DataFrame, cv: CrossValidation, *, problem: Problem, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (fit rows, validation rows) index pairs; a clear error when they cannot be made."""
    n = len(train)
    if n < cv.folds:
        raise BadInput(
            f"{n} training rows cannot make {cv.folds} folds",
            "each fold needs at least one row to validate on",
            f"lower train.cv.folds to at most {max(n, 2)} or add rows",
        )
    kind = cv.kind
    if kind == "auto":
        kind = "kfold" if problem.task == "regression" else "stratified"
    y = target_values(train, problem)
    if kind == "stratified":
        if problem.task == "regression":
            raise BadInput(
                "train.cv.kind 'stratified' needs classes",
                "a regression target has no classes to stratify by",
                "use kind: kfold, group or time",
            )
        counts = pd.Series(y).value_counts()
        if counts.min() < cv.folds:
            raise BadInput(
                f"class {counts.idxmin()!r} has {counts.min()} rows, fewer than {cv.folds} folds",
                "stratified folds need every class in every fold",
                f"lower train.cv.folds to {max(int(counts.min()), 2)} or use kind: kfold",
            )
        splits: Iterator[tuple[np.ndarray, np.ndarray]] = StratifiedKFold(
            cv.folds, shuffle=True, random_state=seed
        ).split(np.zeros(n), y)
    elif kind == "kfold":
        splits = KFold(cv.folds, shuffle=True, random_state=seed).split(np.zeros(n))
    elif kind == "group":
        column = cv.group_column or ""
        if column not in train.columns:
            raise BadInput(
                f"train.cv.group_column '{column}' is not a column of the training rows",
                "group folds keep every row of a group in the same fold",
                f"use one of: {', '.join(map(str, train.columns[:20]))}",
            )
        groups = train[column].to_numpy()
        if len(pd.unique(groups)) < cv.folds:
            raise BadInput(
                f"{len(pd.unique(groups))} groups in '{column}' cannot make {cv.folds} folds",
                "each fold needs whole groups",
                "lower train.cv.folds or choose another group column",
            )
        splits = GroupKFold(cv.folds).split(np.zeros(n), y, groups)
    else:
        order = np.arange(n)
        if problem.timestamp_column and problem.timestamp_column in train.columns:
            order = np.argsort(train[problem.timestamp_column].to_numpy(), kind="stable")
        splits = ((order[a], order[b]) for a, b in TimeSeriesSplit(cv.folds).split(np.zeros(n)))
    return [(np.asarray(a), np.asarray(b)) for a, b in splits]


def cross_validate(
    pipeline: Pipeline,
    train: pd.DataFrame,
    *,
    cv: CrossValidation,
    problem: Problem,
    features: list[str],
    metric: Metric,
    seed: int,
    on_fold: FoldCallback | None = None,
    split: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> CVResult:
    """Fit a clone per fold with the same params; score each fold; keep out-of-fold scores."""
    split = split if split is not None else folds(train, cv, problem=problem, seed=seed)
    X = train[features]
    y = target_values(train, problem)
    oof: np.ndarray | None = None
    scores: list[float] = []
    for i, (fit_rows, valid_rows) in enumerate(split):
        model = clone(pipeline)
        model.fit(X.iloc[fit_rows], y[fit_rows])
        pred = predictions(problem.task, model, X.iloc[valid_rows], problem.positive_label)
        if oof is None:
            oof = np.full((len(train), *pred.shape[1:]), np.nan)
        oof[valid_rows] = pred
        scores.append(float(metric(y[valid_rows], pred)))
        if on_fold is not None:
            on_fold(i, float(np.mean(scores)))
    assert oof is not None
    return CVResult(scores, oof)
