"""Families, baselines, cross-validation and the bad input training must refuse clearly."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from train_fixtures import auc, cancer, mixed

from mlcycle.errors import BadInput
from mlcycle.spec import Candidate, CrossValidation, Problem, Spec, Train, Tuning
from mlcycle.train.cv import cross_validate, folds
from mlcycle.train.fit import (
    build_pipeline,
    fit_baseline,
    fit_baselines,
    fit_candidate,
    predictions,
)
from mlcycle.train.tuning import tune


@pytest.mark.parametrize(
    "estimator",
    [
        "logistic_regression",
        "linear",
        "random_forest",
        "hist_gradient_boosting",
        "lightgbm",
        "sklearn.ensemble.ExtraTreesClassifier",
    ],
)
def test_every_family_fits_mixed_data_with_preprocessing_inside(estimator: str) -> None:
    df, problem, schema = mixed()
    df.loc[::7, "delay"] = np.nan  # the pipeline imputes (or the trees route NaN)
    params = {"n_estimators": 20} if "Forest" in estimator or "Trees" in estimator else {}
    if estimator == "random_forest":
        params = {"n_estimators": 20}
    fit = fit_candidate(
        df,
        Candidate(name="c", estimator=estimator, params=params),
        schema=schema,
        problem=problem,
        seed=1,
    )
    scores = predictions("binary", fit.model, df[fit.features], True)
    assert np.isfinite(scores).all() and auc(df["late"].to_numpy(), scores) > 0.7
    assert fit.classes == [False, True]
    # An unseen category at prediction time does not break the pipeline.
    unseen = df[fit.features].head(3).assign(carrier="ZZ")
    assert np.isfinite(predictions("binary", fit.model, unseen, True)).all()


def test_baselines_prior_majority_mean_and_persistence() -> None:
    df, problem, schema = mixed()
    both = fit_baselines(df, schema=schema, problem=problem)
    assert set(both) == {"prior", "most_frequent"}
    p = predictions("binary", both["prior"].model, df[both["prior"].features], True)
    assert np.allclose(p, df["late"].mean())

    reg = Problem(task="regression", target="delay", timestamp_column="when")
    rdf = df.drop(columns=["late"])
    from mlcycle.data.infer import infer_schema
    from mlcycle.spec import Features

    rschema = infer_schema(rdf, reg, Features())
    shuffled = rdf.sample(frac=1.0, random_state=3)  # persistence follows time, not row order
    fits = fit_baselines(shuffled, schema=rschema, problem=reg)
    assert set(fits) == {"mean", "median", "persistence"}
    last = rdf.sort_values("when")["delay"].iloc[-1]
    assert fits["persistence"].model.predict(rdf[fits["persistence"].features].head(2))[0] == last
    assert fits["mean"].model.predict(rdf.head(1)[fits["mean"].features])[0] == pytest.approx(
        rdf["delay"].mean()
    )
    with pytest.raises(BadInput, match="persistence"):
        fit_baseline(df, strategy="persistence", schema=schema, problem=problem)


@pytest.mark.parametrize("kind", ["kfold", "stratified", "group", "time", "auto"])
def test_cross_validation_kinds_keep_params_and_oof(kind: str) -> None:
    df, problem, schema = mixed(200)
    df["group"] = np.arange(len(df)) % 10
    cv = CrossValidation(kind=kind, folds=4, group_column="group" if kind == "group" else None)
    candidate = Candidate(name="lr", estimator="logistic_regression", params={"C": 0.5})
    pipeline, _, params = build_pipeline(candidate, schema=schema, problem=problem, seed=0)
    split = folds(df, cv, problem=problem, seed=0)
    assert len(split) == 4
    if kind == "group":
        for fit_rows, valid_rows in split:
            assert not set(df["group"].iloc[fit_rows]) & set(df["group"].iloc[valid_rows])
    if kind == "time":
        order = df["when"].to_numpy()
        for fit_rows, valid_rows in split:
            assert order[fit_rows].max() < order[valid_rows].min()
    result = cross_validate(
        pipeline,
        df,
        cv=cv,
        problem=problem,
        features=["delay", "noise", "carrier"],
        metric=auc,
        seed=0,
        split=split,
    )
    assert len(result.fold_scores) == 4 and result.mean > 0.7
    validated = ~np.isnan(result.oof)
    assert validated.all() if kind != "time" else 0 < validated.sum() < len(df)
    assert params["C"] == 0.5


# --- bad input -------------------------------------------------------------------------


def test_unknown_estimator_path() -> None:
    df, problem, schema = mixed(50)
    with pytest.raises(BadInput, match=r"unknown estimator 'sklearn\.nothing\.Here'") as err:
        fit_candidate(
            df,
            Candidate(name="x", estimator="sklearn.nothing.Here"),
            schema=schema,
            problem=problem,
            seed=0,
        )
    assert "dotted path" in err.value.fix


def test_search_space_that_does_not_fit_the_estimator() -> None:
    _df, problem, schema = mixed(50)
    candidate = Candidate.model_validate(
        {
            "name": "hgb",
            "estimator": "hist_gradient_boosting",
            "search": {"n_estimators": {"type": "int", "low": 10, "high": 100}},
        }
    )
    with pytest.raises(BadInput, match=r"no parameter\(s\) \['n_estimators'\]") as err:
        build_pipeline(candidate, schema=schema, problem=problem, seed=0)
    assert "search space does not fit" in err.value.why and "max_iter" in err.value.fix


def test_single_class_target() -> None:
    df, problem, schema = mixed(50)
    df["late"] = True
    with pytest.raises(BadInput, match="single class"):
        fit_candidate(
            df, Candidate(name="c", estimator="linear"), schema=schema, problem=problem, seed=0
        )


def test_all_nan_feature() -> None:
    df, problem, schema = mixed(50)
    df["noise"] = np.nan
    with pytest.raises(BadInput, match=r"\['noise'\] are entirely null"):
        fit_candidate(
            df, Candidate(name="c", estimator="linear"), schema=schema, problem=problem, seed=0
        )


def test_fewer_rows_than_folds() -> None:
    df, problem, _ = mixed(40)
    df = df.head(4)
    with pytest.raises(BadInput, match="4 training rows cannot make 5 folds"):
        folds(df, CrossValidation(kind="kfold", folds=5), problem=problem, seed=0)
    df, problem, _schema = mixed(30)
    df["late"] = [True, True] + [False] * 28
    with pytest.raises(BadInput, match="fewer than 5 folds"):
        folds(df, CrossValidation(folds=5), problem=problem, seed=0)


def test_zero_tuning_budget_names_the_key() -> None:
    with pytest.raises(ValidationError, match="budget of zero"):
        Tuning(trials=0)
    with pytest.raises(ValidationError, match="budget of zero"):
        Tuning(trials=None, seconds=None)
    raw = {
        "project": "p",
        "problem": {"task": "binary", "target": "y"},
        "data": {"source": {"path": "d.parquet"}},
        "train": {"tuning": {"seconds": 0}},
    }
    with pytest.raises(BadInput, match=r"train\.tuning.*budget of zero"):
        Spec.from_dict(raw)


def test_bad_search_ranges_are_refused_in_the_spec() -> None:
    with pytest.raises(ValidationError, match="'low' < 'high'"):
        Candidate.model_validate(
            {
                "name": "a",
                "estimator": "linear",
                "search": {"C": {"type": "float", "low": 1, "high": 1}},
            }
        )
    with pytest.raises(ValidationError, match="'low' > 0"):
        Candidate.model_validate(
            {
                "name": "a",
                "estimator": "linear",
                "search": {"C": {"type": "log", "low": 0, "high": 1}},
            }
        )
    with pytest.raises(ValidationError, match="choices"):
        Candidate.model_validate(
            {"name": "a", "estimator": "linear", "search": {"C": {"type": "categorical"}}}
        )


def test_tuning_without_search_or_validation_is_refused() -> None:
    train, valid, schema = cancer()
    from train_fixtures import CANCER

    plain = Candidate(name="lr", estimator="logistic_regression")
    with pytest.raises(BadInput, match="no search space"):
        tune(
            train,
            plain,
            schema=schema,
            problem=CANCER,
            seed=0,
            metric=auc,
            greater_is_better=True,
            tuning=Tuning(trials=1),
            valid=valid,
        )
    searched = plain.model_copy(
        update={
            "search": {
                "C": Candidate.model_validate(
                    {
                        "name": "a",
                        "estimator": "linear",
                        "search": {"C": {"type": "log", "low": 0.01, "high": 1}},
                    }
                ).search["C"]
            }
        }
    )
    with pytest.raises(BadInput, match="validation rows or cross-validation"):
        tune(
            train,
            searched,
            schema=schema,
            problem=CANCER,
            seed=0,
            metric=auc,
            greater_is_better=True,
            tuning=Tuning(trials=1),
        )


def test_default_train_spec_has_no_search_so_no_tuning() -> None:
    assert all(not c.search for c in Train().candidates)
