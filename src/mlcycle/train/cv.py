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

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import joblib
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


class PreparedFolds:
    """Each fold's fitted preprocessing output, shared by the trials of one tuning.

    Trials change the estimator's hyperparameters, not the preprocessing, yet
    a plain loop refits the ColumnTransformer on every fold of every trial
    (about half of mlcycle's overhead over a bare Optuna loop on numpy). The
    outputs are exactly what ``Pipeline.fit`` would compute (same fit rows,
    same calls), so scores are identical; they are recomputed whenever the
    preprocessing's parameters differ from the cached ones (a search space
    over a preprocessing parameter). Memory: one transformed copy of the
    training rows per fold, for the length of one tuning.

    Example:
        >>> prepared = PreparedFolds()
        >>> cross_validate(pipeline, train, ..., prepared=prepared)  # trial 1 fits prep
        >>> cross_validate(pipeline2, train, ..., prepared=prepared)  # trial 2 reuses it
    """

    def __init__(self) -> None:
        # Trials may run on several threads (``tuning.n_jobs``): entries are keyed by
        # the preprocessing's parameters, so a thread never reads another config's folds.
        self._lock = threading.Lock()
        self._folds: dict[tuple[str, int], tuple[Any, Any]] = {}

    def key(self, pipeline: Any) -> str | None:
        """The cache key of ``pipeline``'s preprocessing; ``None`` when it has none to reuse."""
        if not (isinstance(pipeline, Pipeline) and len(pipeline.steps) > 1):
            return None
        return str(joblib.hash(pipeline[:-1].get_params(deep=True)))

    def fold(
        self,
        pipeline: Pipeline,
        key: str,
        i: int,
        X: pd.DataFrame,
        y: np.ndarray,
        fit_rows: np.ndarray,
        valid_rows: np.ndarray,
    ) -> tuple[Any, Any]:
        """(transformed fit rows, transformed validation rows) of fold ``i``."""
        with self._lock:
            found = self._folds.get((key, i))
        if found is None:
            fitted = clone(pipeline[:-1])
            X_fit = fitted.fit_transform(X.iloc[fit_rows], y[fit_rows])
            found = (X_fit, fitted.transform(X.iloc[valid_rows]))
            with self._lock:
                # Keep one preprocessing's folds: a search over preprocessing
                # parameters would otherwise hold a copy of the data per trial.
                for stale in [k for k in self._folds if k[0] != key]:
                    del self._folds[stale]
                self._folds[(key, i)] = found
        return found


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
    prepared: PreparedFolds | None = None,
) -> CVResult:
    """Fit a clone per fold with the same params; score each fold; keep out-of-fold scores.

    With ``prepared`` (tuning: many trials over the same folds), each fold's
    preprocessing is fitted once and reused while it stays the same; only the
    estimator is fitted per trial.
    """
    split = split if split is not None else folds(train, cv, problem=problem, seed=seed)
    X = train[features]
    y = target_values(train, problem)
    oof: np.ndarray | None = None
    scores: list[float] = []
    key = prepared.key(pipeline) if prepared is not None else None
    for i, (fit_rows, valid_rows) in enumerate(split):
        if prepared is not None and key is not None:
            X_fit, X_valid = prepared.fold(pipeline, key, i, X, y, fit_rows, valid_rows)
            model = clone(pipeline.steps[-1][1])
            model.fit(X_fit, y[fit_rows])
        else:
            model = clone(pipeline)
            model.fit(X.iloc[fit_rows], y[fit_rows])
            X_valid = X.iloc[valid_rows]
        pred = predictions(problem.task, model, X_valid, problem.positive_label)
        if oof is None:
            oof = np.full((len(train), *pred.shape[1:]), np.nan)
        oof[valid_rows] = pred
        scores.append(float(metric(y[valid_rows], pred)))
        if on_fold is not None:
            on_fold(i, float(np.mean(scores)))
    assert oof is not None
    return CVResult(scores, oof)
