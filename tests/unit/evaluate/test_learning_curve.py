"""The learning curve: its points on generated data where the answer is known, the rule
that reads it, the time order of its subsets, the spec key and the report section."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mlcycle.artifacts import Blessing, Evaluation, TrainedModel
from mlcycle.errors import BadInput
from mlcycle.evaluate import evaluate, options_from
from mlcycle.evaluate.holdout import Options
from mlcycle.evaluate.learning import (
    LOW_SKILL,
    RISING,
    VARIANCE_GAP,
    CurveOptions,
    LearningCurveResult,
    learning_curve,
    read_curve,
)
from mlcycle.evaluate.report import render_html
from mlcycle.evaluate.stage import report_data
from mlcycle.spec import EvaluateSection, Problem, Spec

BINARY = Problem(task="binary", target="y", positive_label=1)
THREE = CurveOptions(sizes=(0.1, 0.3, 1.0), max_rows=100_000)


def _fit(model: Any, frame: pd.DataFrame, features: list[str], target: str = "y") -> Any:
    return model.fit(frame[features], frame[target])


def _record(features: list[str], rows: int) -> TrainedModel:
    return TrainedModel(
        name="m", estimator="x", params={}, features=features, train_rows=rows, fit_seconds=0.0
    )


def _curve(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    model: Any,
    baseline: Any,
    problem: Problem = BINARY,
    options: CurveOptions = THREE,
    **kwargs: Any,
) -> LearningCurveResult:
    features = [c for c in train.columns if c.startswith("x")]
    fitted = _fit(model, train, features, problem.target)
    return learning_curve(
        train,
        valid,
        fitted,
        _record(features, len(train)),
        problem=problem,
        baseline=_fit(baseline, train, features, problem.target),
        options=options,
        seed=0,
        **kwargs,
    )


@pytest.fixture(scope="module")
def many_weak_features() -> tuple[pd.DataFrame, pd.DataFrame]:
    """60 features that each carry a little signal: a linear model needs many rows."""
    rng = np.random.default_rng(0)
    n, k = 4000, 60
    X = rng.normal(size=(n, k))
    logit = X @ rng.normal(scale=0.35, size=k)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(k)]).assign(y=y)
    return frame.iloc[:2500].reset_index(drop=True), frame.iloc[2500:].reset_index(drop=True)


def test_more_data_helps_the_curve_rises_and_says_so(
    many_weak_features: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, valid = many_weak_features
    curve = _curve(train, valid, LogisticRegression(C=100, max_iter=500), DummyClassifier())
    assert curve.rows == [250, 750, 2500]
    assert curve.refit == [True, True, False]  # the full size is the trained model itself
    valid_scores = [v for v in curve.valid if v is not None]
    assert valid_scores == sorted(valid_scores) and valid_scores[-1] - valid_scores[0] > 0.08
    assert curve.reading.code == "more_data", curve.reading
    assert "more data would likely help" in curve.reading.text
    assert curve.reading.figures["gain_per_doubling"] >= RISING  # type: ignore[operator]


def test_a_deep_tree_on_noisy_labels_reads_variance() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    x = rng.normal(size=(n, 3))
    clean = (x[:, 0] > 0).astype(int)
    y = np.where(rng.random(n) < 0.3, 1 - clean, clean)  # 30 % of labels flipped
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"]).assign(y=y)
    train, valid = frame.iloc[:2000], frame.iloc[2000:]
    curve = _curve(train, valid, DecisionTreeClassifier(random_state=0), DummyClassifier())
    assert curve.train[-1] == pytest.approx(1.0)  # it memorised every training row
    assert curve.reading.code == "variance", curve.reading
    assert curve.reading.text.startswith("train ≫ validation: variance")
    # seeded: the same inputs give the same curve (the evaluation's content hash depends on it)
    again = _curve(train, valid, DecisionTreeClassifier(random_state=0), DummyClassifier())
    assert again.to_dict() == curve.to_dict()


def test_a_straight_line_through_a_parabola_reads_bias_on_a_lower_is_better_metric() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 3, size=(3000, 1))
    frame = pd.DataFrame({"x0": x[:, 0], "y": x[:, 0] ** 2 + rng.normal(scale=0.3, size=3000)})
    problem = Problem(task="regression", target="y", primary_metric="rmse")
    curve = _curve(
        frame.iloc[:2000], frame.iloc[2000:], LinearRegression(), DummyRegressor(), problem
    )
    assert curve.metric == "rmse" and curve.baseline is not None
    assert curve.reading.code == "bias", curve.reading
    assert curve.reading.figures["valid_skill"] < LOW_SKILL  # type: ignore[operator]


@pytest.mark.parametrize(
    ("train", "valid", "metric", "baseline", "code"),
    [
        # validation gains 0.02 AUC (0.04 skill) per doubling at the top: still rising
        ([0.99, 0.95], [0.80, 0.82], "roc_auc", 0.5, "more_data"),
        # flat validation, train 0.10 AUC (0.20 skill) above it: variance
        ([1.0, 0.99], [0.80, 0.80], "roc_auc", 0.5, "variance"),
        # flat, close, and only 0.2 skill above the baseline: bias
        ([0.61, 0.61], [0.60, 0.60], "roc_auc", 0.5, "bias"),
        ([0.93, 0.93], [0.92, 0.92], "roc_auc", 0.5, "good_fit"),
        # RMSE, lower is better: baseline 10, validation falling 1.0 per doubling = rising skill
        ([2.0, 2.0], [5.0, 4.0], "rmse", 10.0, "more_data"),
        # RMSE: train error far below validation error: variance, not "train is worse"
        ([0.5, 0.5], [4.0, 4.0], "rmse", 10.0, "variance"),
        ([9.0, 9.0], [9.5, 9.5], "rmse", 10.0, "bias"),
        # a perfect RMSE is 0, not 1: from a baseline of 0.5, 0.2 is 60 % of the way there
        ([0.2, 0.2], [0.3, 0.3], "rmse", 0.5, "variance"),
    ],
)
def test_the_reading_rule(
    train: list[float], valid: list[float], metric: str, baseline: float, code: str
) -> None:
    reading = read_curve([1000, 2000], train, valid, metric=metric, baseline=baseline)  # type: ignore[arg-type]
    assert reading.code == code, reading
    assert str(RISING) in reading.rule and str(VARIANCE_GAP) in reading.rule


def test_the_rule_gives_no_reading_without_two_points_or_a_baseline() -> None:
    assert (
        read_curve([1000, 2000], [0.9, None], [0.8, None], metric="roc_auc", baseline=0.5).code
        == "none"
    )
    assert (
        read_curve([1000, 2000], [0.9, 0.9], [0.8, 0.8], metric="roc_auc", baseline=None).code
        == "none"
    )
    # a perfect baseline leaves no scale to measure skill on
    assert read_curve([1, 2], [0.1, 0.1], [0.2, 0.2], metric="ece", baseline=0.0).code == "none"


def test_under_a_time_split_a_smaller_size_is_the_most_recent_history() -> None:
    """The relation flips halfway through time; validation (the future) follows the new one.

    The most recent 10 % of the rows have learnt the new relation; a random or oldest
    10 % have not. A curve that shuffled time, or took the oldest rows, scores ~0.5 or worse.
    """
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.normal(size=n)
    t = np.arange(n)
    y = np.where(t < 2000, x > 0, x < 0).astype(int)  # rows 2000+ follow the new relation
    frame = pd.DataFrame({"x0": x, "y": y, "ts": pd.to_datetime(t, unit="h")})
    train, valid = frame.iloc[:2400].sample(frac=1, random_state=0), frame.iloc[2400:]
    problem = Problem(task="binary", target="y", positive_label=1, timestamp_column="ts")
    options = CurveOptions(sizes=(0.1, 0.2, 1.0), max_rows=100_000)
    recent = _curve(
        train, valid, LogisticRegression(), DummyClassifier(), problem, options, time_ordered=True
    )
    assert "most recent" in recent.order
    assert recent.valid[0] is not None and recent.valid[0] > 0.95
    shuffled = _curve(train, valid, LogisticRegression(), DummyClassifier(), problem, options)
    assert shuffled.valid[0] is not None and shuffled.valid[0] < 0.5


def test_a_model_fitted_beyond_the_training_split_is_refit_within_max_rows(
    many_weak_features: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, valid = many_weak_features
    features = [c for c in train.columns if c.startswith("x")]
    fitted = _fit(LogisticRegression(max_iter=300), train, features)
    curve = learning_curve(
        train,
        valid,
        fitted,
        _record(features, len(train) + len(valid)),  # train.final_fit: train_valid
        problem=BINARY,
        baseline=None,
        options=CurveOptions(sizes=(0.2, 1.0), max_rows=1000),
        seed=0,
    )
    assert curve.rows == [500, 1000] and curve.refit == [True, True]
    assert curve.reading.code == "none"  # no baseline given


def test_evaluate_keeps_the_curve_in_its_details_and_the_report_draws_it(
    many_weak_features: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, valid = many_weak_features
    features = [c for c in train.columns if c.startswith("x")]
    test = valid.iloc[:600]
    models = {
        "candidate": (
            _fit(LogisticRegression(max_iter=300), train, features),
            _record(features, len(train)),
        ),
        "baseline": (_fit(DummyClassifier(), train, features), _record(features, len(train))),
    }
    options = Options(n_boot=0, learning_curve=CurveOptions(sizes=(0.2, 1.0)))
    without = evaluate(test, valid, models, problem=BINARY, options=options)
    assert without.learning_curve is None and "learning_curve" not in without.details
    result = evaluate(test, valid, models, problem=BINARY, options=options, train=train)
    assert result.learning_curve is not None
    assert result.details["learning_curve"]["rows"] == [500, 2500]
    page = render_html(
        report_data(
            "p",
            result.evaluation,
            result.details,
            Blessing(blessed=True, checks=[]),
            problem=BINARY,
            champion=None,
            champion_details=None,
        )
    )
    assert "<h2>Learning curve (roc_auc)</h2>" in page
    assert result.learning_curve.reading.text.split(":")[0] in page
    assert page.count("<polyline") >= 2 and "training rows (log scale)" in page
    assert "Rule: skill = " in page


def test_report_without_a_curve_has_no_section() -> None:
    evaluation = Evaluation(
        task="binary", primary_metric="roc_auc", rows=10, metrics={"candidate": {"roc_auc": 0.7}}
    )
    data = {"evaluation": evaluation.model_dump(), "blessing": {"blessed": False, "checks": []}}
    assert "Learning curve" not in render_html(data)


MINIMAL = {
    "project": "p",
    "problem": {"task": "binary", "target": "y"},
    "data": {"source": {"path": "d.csv"}},
}


def _spec(curve: dict[str, Any]) -> Spec:
    return Spec.from_dict({**MINIMAL, "evaluate": {"learning_curve": curve}})


def test_the_spec_key_is_in_the_cache_key_only_when_it_changes_the_output() -> None:
    off = _spec({"enabled": False}).section_hash("evaluate")
    assert (
        _spec({"enabled": False, "sizes": [0.5, 1.0], "max_rows": 500}).section_hash("evaluate")
        == off
    )
    on = _spec({"sizes": [0.5, 1.0]}).section_hash("evaluate")
    assert on != off
    assert _spec({"sizes": [0.25, 1.0]}).section_hash("evaluate") != on
    assert _spec({"sizes": [0.5, 1.0], "max_rows": 500}).section_hash("evaluate") != on
    # and the evaluation options follow the spec
    lc = options_from(_spec({"sizes": [1.0, 0.5], "max_rows": 500}).evaluate, seed=1)
    assert lc.learning_curve == CurveOptions(enabled=True, sizes=(0.5, 1.0), max_rows=500)
    assert EvaluateSection().learning_curve.enabled


@pytest.mark.parametrize(
    ("curve", "says"),
    [
        ({"sizes": [0.0, 1.0]}, "0 < size ≤ 1"),
        ({"sizes": [0.5, 1.5]}, "0 < size ≤ 1"),
        ({"sizes": [1.0]}, "evaluate.learning_curve.sizes"),
        ({"sizes": [0.5, 0.5]}, "repeat"),
        ({"max_rows": 10}, "evaluate.learning_curve.max_rows"),
        ({"folds": 3}, "allowed here: enabled, max_rows, sizes"),
    ],
)
def test_bad_spec_values_name_the_key(curve: dict[str, Any], says: str) -> None:
    with pytest.raises(BadInput) as err:
        _spec(curve)
    assert says in err.value.why


class _Opaque:
    """A fitted model scikit-learn cannot clone (no get_params): it cannot be refitted."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.classes_ = inner, inner.classes_

    def predict_proba(self, X: Any) -> Any:
        return self.inner.predict_proba(X)


def test_a_model_that_cannot_be_refitted_keeps_its_evaluation_and_the_report_says_why(
    many_weak_features: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, valid = many_weak_features
    features = [c for c in train.columns if c.startswith("x")]
    record = _record(features, len(train))
    opaque = _Opaque(_fit(LogisticRegression(max_iter=300), train, features))
    models = {"candidate": (opaque, record)}
    options = Options(n_boot=0, learning_curve=CurveOptions())
    result = evaluate(valid, valid, models, problem=BINARY, options=options, train=train)
    assert result.learning_curve is None and result.evaluation.metrics["candidate"]["roc_auc"] > 0.6
    assert "Cannot clone" in result.details["learning_curve_error"]
    data = {
        "evaluation": result.evaluation.model_dump(),
        "details": result.details,
        "blessing": {"blessed": False, "checks": []},
    }
    assert "Learning curve</h2><p class='muted'>Not drawn: TypeError" in render_html(data)
