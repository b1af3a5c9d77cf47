"""The learning curve: train and validation score of the chosen model by training-set size,
and what it says about bias and variance.

Each smaller size refits a clone of the trained pipeline (preprocessing included,
the chosen model's final parameters) on a subset of the training split and scores
it, on the primary metric, on the rows it was fitted on and on the validation
split. scikit-learn's :func:`~sklearn.model_selection.learning_curve` does the
fitting and scoring; the cross-validation it is given is the project's own split
(a :class:`~sklearn.model_selection.PredefinedSplit`: training rows → validation
rows), so the curve respects the split's scheme by construction: under a time
split every subset is older than the validation rows and a size of *n* means the
*n most recent* training rows (time is never shuffled); under a group split the
validation groups never occur in training. Cost: one fit per size, none for the
full size when the trained model was fitted on the training split alone — its
scores are the shipped model's own. K-fold cross-validation would multiply the
fits by *k* (see docs/evaluation.md for the measurement).

:func:`read_curve` turns the curve into one sentence by a stated rule, on *skill*
— how far a score has gone from the naive baseline's (0) toward a perfect score
(1), so that one set of thresholds fits every metric:

1. validation skill still rising at full size (≥ ``RISING`` per doubling of the
   rows, between the two largest sizes): more data would likely help;
2. else train skill ≫ validation skill (gap ≥ ``VARIANCE_GAP``): variance;
3. else validation skill < ``LOW_SKILL`` (both low, and close): bias;
4. else: train and validation close and good — no clear lever.

Example:
    >>> curve = learning_curve(train, valid, fitted, record, problem=spec.problem,
    ...                        baseline=baseline_model, options=CurveOptions(), seed=42)
    >>> curve.reading.code, curve.reading.text
    ('more_data', 'validation still rising at full size: more data would likely help')
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import TrainedModel
from mlcycle.evaluate.metrics import compute_metrics, scores_for
from mlcycle.spec import LOWER_IS_BETTER, Problem

#: Validation skill gained per doubling of the training rows, at full size, that
#: still counts as rising (skill is 0 at the baseline's score, 1 at a perfect one).
RISING = 0.01
#: Train skill above validation skill, at full size, that counts as variance.
VARIANCE_GAP = 0.10
#: Validation skill, at full size, below which the model counts as weak (bias).
LOW_SKILL = 0.5
#: The most rows scored per score (validation: one fixed sample, the same rows for every
#: size; train: evenly spaced rows of the subset). Scoring up to 20,000 rows per side took a
#: third of the curve's time on flights; 5,000 rows keep ROC-AUC within about ±0.005.
SCORE_ROWS = 5_000
#: Fewer training rows than this make no point on the curve.
MIN_ROWS = 20

READINGS = {
    "more_data": "validation still rising at full size: more data would likely help",
    "variance": "train ≫ validation: variance — regularise or simplify",
    "bias": "both low and close: bias — a richer model or features",
    "good_fit": "train and validation close and good: neither more data nor a bigger "
    "model is clearly called for",
    "none": "no reading: fewer than two sizes could be scored",
}


@dataclass(frozen=True)
class CurveOptions:
    """How to draw the curve (the spec's ``evaluate.learning_curve``)."""

    enabled: bool = True
    sizes: tuple[float, ...] = (0.1, 0.3, 1.0)
    max_rows: int = 20_000


@dataclass
class Reading:
    """The curve's one-line reading, which rule gave it, and the figures it judged."""

    code: str
    text: str
    rule: str
    figures: dict[str, float | None] = field(default_factory=dict)


@dataclass
class LearningCurveResult:
    """Scores by training rows (``rows`` ascending; ``None`` where a size could not be scored).

    ``refit`` says, per point, whether it is a refit (``False``: the trained model).
    """

    metric: str
    rows: list[int]
    train: list[float | None]
    valid: list[float | None]
    refit: list[bool]
    baseline: float | None
    train_rows: int
    valid_rows: int
    order: str
    reading: Reading

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the evaluation's details (and the report's data)."""
        return asdict(self)


def learning_curve(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    fitted: Any,
    record: TrainedModel,
    *,
    problem: Problem,
    baseline: Any | None,
    options: CurveOptions,
    seed: int,
    time_ordered: bool = False,
) -> LearningCurveResult:
    """Train and validation score of the chosen model by training-set size, with a reading.

    ``time_ordered`` (a time split): a size of *n* is the *n* most recent training
    rows (by ``problem.timestamp_column``); otherwise a seeded random subset, each
    size containing the smaller ones. ``baseline`` (the fitted naive baseline)
    anchors the reading's skill scale.

    Example:
        >>> options = CurveOptions(sizes=(0.5, 1.0), max_rows=100_000)
        >>> curve = learning_curve(train, valid, fitted, record, problem=problem,
        ...                        baseline=None, options=options, seed=0)
        >>> curve.rows, curve.refit  # the full size is the trained model: no fit
        ([56231, 112462], [True, False])
    """
    metric = problem.metric
    rng = np.random.default_rng(seed)
    n = len(train)
    order, order_name = _subset_order(train, problem, time_ordered, rng)
    if len(valid) > SCORE_ROWS:
        valid = valid.iloc[np.sort(rng.choice(len(valid), SCORE_ROWS, replace=False))]
    X_valid = valid[record.features]
    y_valid = valid[problem.target].to_numpy()
    valid_rows = (X_valid, y_valid)
    score = _scorer(problem)

    reuse = record.train_rows == n  # fitted on exactly the training split: the full point is free
    wanted = sorted({min(max(round(s * n), 1), n) for s in options.sizes})
    free = [r for r in wanted if r == n and reuse]
    refits = sorted({min(r, options.max_rows) for r in wanted if r not in free})
    refits = [r for r in refits if r >= MIN_ROWS and r not in free]

    points: dict[int, tuple[float, float, bool]] = {}
    if refits and len(valid):
        fit_rows = train.iloc[order[: refits[-1]]]
        points |= _refit_points(
            fitted, fit_rows[record.features], fit_rows[problem.target], refits, valid_rows, score
        )
    if free and len(valid):
        # The trained model saw every training row: score it on a random sample of them all.
        sample = train if n <= SCORE_ROWS else train.iloc[rng.choice(n, SCORE_ROWS, replace=False)]
        points[n] = (
            score(fitted, sample[record.features], sample[problem.target].to_numpy()),
            score(fitted, X_valid, y_valid),
            False,
        )
    base = score(baseline, X_valid, y_valid) if baseline is not None and len(valid) else None
    rows = sorted(points)
    train_curve = [_finite(points[r][0]) for r in rows]
    valid_curve = [_finite(points[r][1]) for r in rows]
    return LearningCurveResult(
        metric=metric,
        rows=rows,
        train=train_curve,
        valid=valid_curve,
        refit=[points[r][2] for r in rows],
        baseline=_finite(base),
        train_rows=n,
        valid_rows=len(valid),
        order=order_name,
        reading=read_curve(rows, train_curve, valid_curve, metric=metric, baseline=_finite(base)),
    )


def _subset_order(
    train: pd.DataFrame, problem: Problem, time_ordered: bool, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """The order training rows join the subsets in (a size of *n* is the first *n*)."""
    if time_ordered and problem.timestamp_column in train.columns:
        # Most recent first: a smaller size is a shorter history, ending where validation starts.
        stamps = train[problem.timestamp_column].to_numpy()
        return np.argsort(stamps, kind="stable")[::-1], "most recent rows first (time split)"
    return rng.permutation(len(train)), "random subsets (seeded, nested)"


def _refit_points(
    fitted: Any,
    X_fit: pd.DataFrame,
    y_fit: pd.Series,
    sizes: list[int],
    valid_rows: tuple[pd.DataFrame, np.ndarray],
    score: Any,
) -> dict[int, tuple[float, float, bool]]:
    """Refit a clone on the first ``size`` rows of ``X_fit`` for each size; score both sides.

    scikit-learn's ``learning_curve`` over one predefined split: the fit rows, then
    the validation rows (``shuffle=False``: the subsets are prefixes, so a given order
    — time, or a seeded shuffle — is kept and the subsets nest).
    """
    from sklearn.base import clone
    from sklearn.model_selection import PredefinedSplit
    from sklearn.model_selection import learning_curve as sk_learning_curve

    X_valid, y_valid = valid_rows
    X = pd.concat([X_fit, X_valid], ignore_index=True)
    y = np.concatenate([y_fit.to_numpy(), y_valid])
    fold = np.r_[np.full(len(X_fit), -1), np.zeros(len(X_valid), dtype=int)]
    with warnings.catch_warnings():
        # A size too small for the model (one class) is a NaN point, not a failed step.
        warnings.simplefilter("ignore")
        rows, train_scores, valid_scores = sk_learning_curve(
            clone(fitted),
            X,
            y,
            train_sizes=np.asarray(sizes),
            cv=PredefinedSplit(fold),
            scoring=score,
            shuffle=False,
            n_jobs=1,
            error_score=np.nan,
        )
    return {
        int(r): (float(t), float(v), True)
        for r, t, v in zip(rows, train_scores[:, 0], valid_scores[:, 0], strict=True)
    }


def read_curve(
    rows: list[int],
    train: list[float | None],
    valid: list[float | None],
    *,
    metric: str,
    baseline: float | None,
) -> Reading:
    """The one-line reading of a learning curve, by the rule in the module docs.

    Scores are turned into skill, ``(score - baseline) / (perfect - baseline)``
    (perfect is 0 for a lower-is-better metric such as RMSE, else 1), so the
    thresholds hold for every metric. Without a baseline score, or with a
    perfect one, there is no scale and no reading.

    Example:
        >>> read_curve([1000, 2000], [0.99, 0.99], [0.70, 0.71], metric="roc_auc",
        ...            baseline=0.5).code
        'variance'
    """
    rule = (
        f"skill = (score − baseline) / (perfect − baseline); at full size: validation skill "
        f"gain per doubling of rows ≥ {RISING} → more data; else train − validation skill "
        f"≥ {VARIANCE_GAP} → variance; else validation skill < {LOW_SKILL} → bias; else good fit"
    )
    scored = [
        (r, t, v)
        for r, t, v in zip(rows, train, valid, strict=True)
        if t is not None and v is not None
    ]
    if len(scored) < 2:
        return Reading("none", READINGS["none"], rule)
    perfect = 0.0 if metric in LOWER_IS_BETTER else 1.0
    if baseline is None or abs(perfect - baseline) < 1e-12:
        return Reading("none", "no reading: no baseline score to measure skill from", rule)
    skill = _skill_scale(metric, baseline)
    (r0, _, v0), (r1, t1, v1) = scored[-2], scored[-1]
    gain = (skill(v1) - skill(v0)) / math.log2(r1 / r0)
    gap = skill(t1) - skill(v1)
    figures: dict[str, float | None] = {
        "valid_skill": round(skill(v1), 4),
        "train_skill": round(skill(t1), 4),
        "gap": round(gap, 4),
        "gain_per_doubling": round(gain, 4),
    }
    if gain >= RISING:
        code = "more_data"
    elif gap >= VARIANCE_GAP:
        code = "variance"
    elif skill(v1) < LOW_SKILL:
        code = "bias"
    else:
        code = "good_fit"
    return Reading(code, READINGS[code], rule, figures)


def _skill_scale(metric: str, baseline: float) -> Any:
    span = (0.0 if metric in LOWER_IS_BETTER else 1.0) - baseline

    def skill(score: float) -> float:
        return (score - baseline) / span

    return skill


def _scorer(problem: Problem) -> Any:
    """``score(estimator, X, y)`` on the primary metric, as mlcycle computes it everywhere."""

    def score(estimator: Any, X: Any, y: Any) -> float:
        if len(X) > SCORE_ROWS:  # a refit's own training rows: evenly spaced, deterministic
            take = np.linspace(0, len(X) - 1, SCORE_ROWS).astype(int)
            X, y = X.iloc[take], np.asarray(y)[take]
        try:
            s = scores_for(problem.task, estimator, X, problem.positive_label)
            classes = list(estimator.classes_) if problem.task == "multiclass" else None
            value = compute_metrics(
                problem.task, y, s, positive_label=problem.positive_label, classes=classes
            ).get(problem.metric)
        except (ValueError, IndexError):  # a size too small for the metric: no point
            return float("nan")
        return float("nan") if value is None else float(value)

    return score


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
