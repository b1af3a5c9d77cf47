"""The training stage: baselines, candidates (tuned when they declare a search space, with
cross-validation when ``train.cv`` is set), the best family on validation, a final fit,
and the model tests. Every baseline, candidate and trial is tracked as a run.

:func:`train` takes the train and valid frames and the spec; it knows nothing
of the store: the tracker (and Optuna's storage URL) come in through
:class:`Tracking`, and the fitted models come back in a :class:`TrainingResult`
for the pipeline's catalog to save.

Example:
    >>> tracking = Tracking(tracker, experiment="flights", tags={"seed": 42, ...},
    ...                     study_key="splits-id", optuna_storage=None)
    >>> result = train(train_df, valid_df, schema=schema, problem=spec.problem,
    ...                cfg=spec.train, tracking=tracking, metrics=compute_metrics)
    >>> result.record.name, result.model_tests.passed
    ('hgb', True)
    >>> tracking.finish({"model_id": model_id})
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import ModelTestReport, TrainedModel
from mlcycle.schema import Schema
from mlcycle.spec import LOWER_IS_BETTER, Candidate, Problem
from mlcycle.spec import Train as TrainSpec
from mlcycle.train.cv import cross_validate
from mlcycle.train.fit import (
    FitResult,
    build_pipeline,
    fit_baseline,
    fit_baselines,
    fit_candidate,
    predictions,
)
from mlcycle.train.model_tests import report_summary, run_model_tests
from mlcycle.train.tracking import Run, Tracker

#: ``(task, y_true, scores, positive_label=..., classes=...) -> {metric: value}``: the
#: evaluation stage's ``compute_metrics``, handed in by the pipeline (a stage never
#: imports another), so validation scores mean what holdout scores mean.
Metrics = Callable[..., dict[str, float]]


@dataclass
class Tracking:
    """Where the training runs are tracked, and what every run is tagged with.

    ``tags`` are the run fields shared by every run (``seed``, ``dataset_id``,
    ``spec_hash``, ``git_sha``, ``git_dirty``); ``study_key`` makes a candidate's
    Optuna study name unique to its inputs, so an interrupted study resumes.
    """

    tracker: Tracker
    experiment: str
    tags: dict[str, Any]
    study_key: str
    optuna_storage: str | None = None
    parent: Run | None = field(default=None, init=False)

    def start(self, name: str, parent: Run | None, tags: dict[str, Any]) -> Run:
        """A run under ``parent`` (``None``: a top-level run), with the shared fields."""
        return self.tracker.start_run(
            name, parent=parent, tags=tags, experiment=self.experiment, **self.tags
        )

    def finish(self, tags: dict[str, Any] | None = None) -> None:
        """Tag the top-level run (e.g. with the stored model ids) and write everything out."""
        if tags and self.parent is not None:
            self.parent.set_tags(tags)
        self.tracker.flush()


@dataclass
class TrainingResult:
    """What :func:`train` hands back: the final model, the baseline, their records, the
    model tests, and the step's summary."""

    model: FitResult
    record: TrainedModel
    baseline: FitResult
    baseline_record: TrainedModel
    model_tests: ModelTestReport
    summary: dict[str, Any]


@dataclass
class _Setting:
    """What every fit of one training needs: the data, the spec and the scoring."""

    train: pd.DataFrame
    valid: pd.DataFrame
    schema: Schema
    problem: Problem
    cfg: TrainSpec
    tracking: Tracking
    metrics: Metrics

    @property
    def metric(self) -> str:
        return self.problem.metric

    @property
    def greater(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def valid_metrics(self, fit: FitResult) -> dict[str, float]:
        problem = self.problem
        scores = predictions(
            problem.task, fit.model, self.valid[fit.features], problem.positive_label
        )
        return self.metrics(
            problem.task,
            self.valid[problem.target].to_numpy(),
            scores,
            positive_label=problem.positive_label,
            classes=fit.classes,
        )

    def score(self, y: np.ndarray, s: np.ndarray) -> float:
        problem = self.problem
        return self.metrics(problem.task, y, s, positive_label=problem.positive_label)[self.metric]

    def build(self, candidate: Candidate, features: list[str], **overrides: Any) -> Any:
        return build_pipeline(
            candidate,
            schema=self.schema,
            problem=self.problem,
            seed=self.cfg.seed,
            features=features,
            overrides=overrides or None,
        )[0]


def train(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    schema: Schema,
    problem: Problem,
    cfg: TrainSpec,
    tracking: Tracking,
    metrics: Metrics,
) -> TrainingResult:
    """Splits → the best candidate (by validation score), the naive baseline, model tests.

    ``metrics`` scores validation rows (see :data:`Metrics`). Call
    ``tracking.finish(...)`` afterwards to tag the top-level run and flush.

    Example:
        >>> result = train(train_df, valid_df, schema=schema, problem=spec.problem,
        ...                cfg=spec.train, tracking=tracking, metrics=compute_metrics)
        >>> result.summary["best"]
        'hgb'
    """
    s = _Setting(train, valid, schema, problem, cfg, tracking, metrics)
    metric = s.metric
    with tracking.start("train", None, {"mlcycle.step": "train"}) as parent:
        tracking.parent = parent
        baseline, base_metrics, baseline_scores = _baselines(s, parent)
        results = [_candidate(s, candidate, parent) for candidate in cfg.candidates]
        ranked = sorted(
            results,
            key=lambda r: -r[1].get(metric, -np.inf) if s.greater else r[1].get(metric, np.inf),
        )
        best, best_metrics = ranked[0]
        best_candidate = next(c for c in cfg.candidates if c.name == best.name)
        final, train_rows = _final_fit(s, best, best_candidate)
        parent.set_tags({"best": best.name})
        parent.log_metrics({f"best_valid_{metric}": best_metrics.get(metric, float("nan"))})
        report = run_model_tests(
            final.model,
            name=best.name,
            build=lambda: s.build(best_candidate, final.features, **final.params),
            train=train,
            sample=valid.sample(n=min(len(valid), 500), random_state=cfg.seed),
            problem=problem,
            features=final.features,
            tests=cfg.model_tests,
            seed=cfg.seed,
        )
        parent.set_tags({"model_tests_passed": report.passed})
    summary = {
        "best": best.name,
        "valid": {r[0].name: round(r[1].get(metric, float("nan")), 4) for r in results}
        | {f"baseline_{k}": round(v, 4) for k, v in baseline_scores.items()},
        "fit_seconds": round(best.fit_seconds, 2),
        "model_tests": report_summary(report),
        "run": parent.id,
    }
    return TrainingResult(
        model=final,
        record=trained_record(final, best_metrics, train_rows),
        baseline=baseline,
        baseline_record=trained_record(baseline, base_metrics, len(train)),
        model_tests=report,
        summary=summary,
    )


def trained_record(fit: FitResult, metrics: dict[str, float], rows: int) -> TrainedModel:
    """The typed record of a fitted model (what the catalog stores beside it).

    Example:
        >>> trained_record(fit, {"roc_auc": 0.71}, rows=1000).features
        ['month', 'carrier']
    """
    return TrainedModel(
        name=fit.name,
        estimator=fit.estimator,
        params=_jsonable(fit.params),
        features=fit.features,
        classes=fit.classes,
        train_rows=rows,
        fit_seconds=fit.fit_seconds,
        valid_metrics=metrics,
    )


def _baselines(s: _Setting, parent: Run) -> tuple[FitResult, dict[str, float], dict[str, float]]:
    """Every baseline that fits the task is fitted and logged; the spec's is returned."""
    cfg, problem = s.cfg, s.problem
    baselines = fit_baselines(s.train, schema=s.schema, problem=problem)
    chosen = cfg.baseline if cfg.baseline != "auto" else None
    baseline = (
        baselines[chosen]
        if chosen in baselines
        else fit_baseline(s.train, strategy=cfg.baseline, schema=s.schema, problem=problem)
    )
    scores: dict[str, float] = {}
    base_metrics: dict[str, float] = {}
    for strategy, fit in baselines.items():
        metrics = s.valid_metrics(fit)
        scores[strategy] = metrics.get(s.metric, float("nan"))
        if fit is baseline:
            base_metrics = metrics
        with s.tracking.start(fit.name, parent, {"role": "baseline"}) as run:
            run.log_params(fit.params)
            run.log_metrics({f"valid_{k}": v for k, v in metrics.items()})
    if baseline not in baselines.values():
        base_metrics = s.valid_metrics(baseline)
    return baseline, base_metrics, scores


def _candidate(
    s: _Setting, candidate: Candidate, parent: Run
) -> tuple[FitResult, dict[str, float]]:
    """One candidate: tuned (or cross-validated), fitted on train, scored on valid, logged."""
    cfg = s.cfg
    tags = {"role": "candidate", "estimator": candidate.estimator}
    with s.tracking.start(candidate.name, parent, tags) as run:
        overrides: dict[str, Any] | None = None
        oof: np.ndarray | None = None
        if candidate.search:
            overrides, oof = _tune(s, candidate, run)
        fitted = fit_candidate(
            s.train,
            candidate,
            schema=s.schema,
            problem=s.problem,
            seed=cfg.seed,
            overrides=overrides,
        )
        if cfg.cv is not None and not candidate.search:
            cv_result = cross_validate(
                s.build(candidate, fitted.features),
                s.train,
                cv=cfg.cv,
                problem=s.problem,
                features=fitted.features,
                metric=s.score,
                seed=cfg.seed,
            )
            oof = cv_result.oof
            for i, fold in enumerate(cv_result.fold_scores):
                run.log_metric(f"cv_{s.metric}", fold, step=i)
            run.log_metrics(
                {f"cv_mean_{s.metric}": cv_result.mean, f"cv_std_{s.metric}": cv_result.std}
            )
        metrics = s.valid_metrics(fitted)
        run.log_params(_jsonable(fitted.params))
        run.log_metrics({f"valid_{k}": v for k, v in metrics.items()})
        run.log_metric("fit_seconds", fitted.fit_seconds)
        if oof is not None:
            _log_oof(run, s.train, s.problem.target, oof)
    return fitted, metrics


# How a trial's Optuna state shows as a tracked run's status.
_TRIAL_STATUS = {"complete": "finished", "pruned": "pruned", "fail": "failed"}


def _tune(s: _Setting, candidate: Candidate, run: Run) -> tuple[dict[str, Any], np.ndarray | None]:
    """Tune a candidate's search space, each trial a run under the candidate's."""
    from mlcycle.train.tuning import TrialReport, tune

    cfg, metric, tracking = s.cfg, s.metric, s.tracking
    key = hashlib.sha256(
        json.dumps(
            [
                tracking.study_key,
                candidate.model_dump(mode="json"),
                cfg.cv.model_dump(mode="json") if cfg.cv else None,
                cfg.tuning.model_dump(mode="json"),
                cfg.seed,
                metric,
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:12]

    def on_trial(report: TrialReport) -> None:
        tags = {"role": "trial", "state": report.state}
        with tracking.start(f"{candidate.name}#{report.number}", run, tags) as trial_run:
            trial_run.log_params(report.params)
            for i, fold in enumerate(report.fold_scores):
                trial_run.log_metric(f"cv_{metric}", fold, step=i)
            if report.value is not None:
                trial_run.log_metric(f"objective_{metric}", report.value)
            if report.state == "pruned" and report.fold_scores:
                # The running score the pruner judged (after fold N): why it stopped.
                trial_run.log_metric(f"pruned_at_{metric}", report.fold_scores[-1])
                trial_run.set_tag("pruned_at_fold", len(report.fold_scores) - 1)
            trial_run.log_metric("trial_seconds", report.seconds)
            # A pruned or failed trial must not read as "finished" in `mlcycle runs list`.
            trial_run.end(_TRIAL_STATUS.get(report.state, "finished"))

    tuned = tune(
        s.train,
        candidate,
        schema=s.schema,
        problem=s.problem,
        seed=cfg.seed,
        metric=s.score,
        greater_is_better=s.greater,
        tuning=cfg.tuning,
        cv=cfg.cv,
        valid=s.valid,
        storage=tracking.optuna_storage,
        study_name=f"{tracking.experiment}.{candidate.name}.{key}",
        on_trial=on_trial,
        progress=True,
        metric_name=metric,
    )
    run.set_tags(
        {"study": tuned.study_name, "best_trial": tuned.best_trial, "trials_resumed": tuned.resumed}
    )
    run.log_metrics(
        {
            f"tuning_best_{metric}": tuned.best_value,
            "trials_complete": tuned.complete,
            "trials_pruned": tuned.pruned,
        }
    )
    return tuned.best_params, tuned.best_oof


def _final_fit(s: _Setting, best: FitResult, candidate: Candidate) -> tuple[FitResult, int]:
    """The model to ship: the best fit itself, or refitted on train + valid."""
    if s.cfg.final_fit != "train_valid":
        return best, len(s.train)
    both = pd.concat([s.train, s.valid], ignore_index=True)
    final = fit_candidate(
        both,
        candidate,
        schema=s.schema,
        problem=s.problem,
        seed=s.cfg.seed,
        overrides=best.params,
    )
    return final, len(both)


def _log_oof(run: Run, train: pd.DataFrame, target: str, oof: np.ndarray) -> None:
    """Out-of-fold predictions beside the target, as a Parquet file of the run."""
    frame = pd.DataFrame({"row": np.arange(len(train)), "target": train[target].to_numpy()})
    if oof.ndim == 1:
        frame["oof"] = oof
    else:
        for k in range(oof.shape[1]):
            frame[f"oof_{k}"] = oof[:, k]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "oof_predictions.parquet"
        frame.to_parquet(path, index=False)
        run.log_artifact(path)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(params, default=str)))
