"""The training step: baselines, candidates (tuned when they declare a search space, with
cross-validation when ``train.cv`` is set), the best family on validation, a final fit,
and the model tests. Every baseline, candidate and trial is tracked as a run."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import TrainedModel
from mlcycle.pipeline.project import Project
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.common import (
    ML_LIBS,
    load_dataset,
    load_split,
    put_model,
)
from mlcycle.spec import LOWER_IS_BETTER


class Train(Step):
    """Splits → the best candidate (by validation score), the naive baseline, model tests."""

    name = "train"
    inputs = ("dataset", "splits")
    sections = ("problem", "train")
    libraries = (*ML_LIBS, "optuna", "lightgbm")
    revision = 2

    def run(self, project: Project, inputs: dict[str, str]) -> StepResult:
        from mlcycle.evaluate import compute_metrics
        from mlcycle.train.cv import cross_validate
        from mlcycle.train.fit import (
            build_pipeline,
            fit_baseline,
            fit_baselines,
            fit_candidate,
            predictions,
        )
        from mlcycle.train.model_tests import report_summary, run_model_tests
        from mlcycle.train.tracking import get_tracker, split_git_sha
        from mlcycle.train.tuning import TrialReport, optuna_url, tune

        spec = project.spec
        problem = spec.problem
        cfg = spec.train
        seed = cfg.seed
        dataset, _ = load_dataset(project, inputs["dataset"])
        schema = dataset.schema_
        train = load_split(project, inputs["splits"], "train")
        valid = load_split(project, inputs["splits"], "valid")
        parents = {"dataset": inputs["dataset"], "splits": inputs["splits"]}
        metric = problem.metric
        greater = metric not in LOWER_IS_BETTER
        y_valid = valid[problem.target].to_numpy()

        def valid_metrics(fit: Any) -> dict[str, float]:
            scores = predictions(
                problem.task, fit.model, valid[fit.features], problem.positive_label
            )
            return compute_metrics(
                problem.task,
                y_valid,
                scores,
                positive_label=problem.positive_label,
                classes=fit.classes,
            )

        def score(y: np.ndarray, s: np.ndarray) -> float:
            return compute_metrics(problem.task, y, s, positive_label=problem.positive_label)[
                metric
            ]

        tracker = get_tracker(project.store)
        sha, dirty = split_git_sha(project.git_sha)
        context: dict[str, Any] = {
            "experiment": project.name,
            "seed": seed,
            "dataset_id": inputs["dataset"],
            "spec_hash": spec.hash(),
            "git_sha": sha,
            "git_dirty": dirty,
        }
        results: list[tuple[Any, dict[str, float]]] = []
        summary: dict[str, Any] = {}
        with tracker.start_run("train", tags={"mlcycle.step": "train"}, **context) as parent:
            # Every baseline that fits the task is fitted and logged; the spec's is the output.
            baselines = fit_baselines(train, schema=schema, problem=problem)
            chosen = cfg.baseline if cfg.baseline != "auto" else None
            baseline = (
                baselines[chosen]
                if chosen in baselines
                else fit_baseline(train, strategy=cfg.baseline, schema=schema, problem=problem)
            )
            baseline_scores: dict[str, float] = {}
            for strategy, fit in baselines.items():
                metrics = valid_metrics(fit)
                baseline_scores[strategy] = metrics.get(metric, float("nan"))
                if fit is baseline:
                    base_metrics = metrics
                with tracker.start_run(
                    fit.name, parent=parent, tags={"role": "baseline"}, **context
                ) as run:
                    run.log_params(fit.params)
                    run.log_metrics({f"valid_{k}": v for k, v in metrics.items()})
            if baseline not in baselines.values():
                base_metrics = valid_metrics(baseline)

            for candidate in cfg.candidates:
                with tracker.start_run(
                    candidate.name,
                    parent=parent,
                    tags={"role": "candidate", "estimator": candidate.estimator},
                    **context,
                ) as run:
                    overrides: dict[str, Any] | None = None
                    oof: np.ndarray | None = None
                    if candidate.search:
                        key = hashlib.sha256(
                            json.dumps(
                                [
                                    inputs["splits"],
                                    candidate.model_dump(mode="json"),
                                    cfg.cv.model_dump(mode="json") if cfg.cv else None,
                                    cfg.tuning.model_dump(mode="json"),
                                    seed,
                                    metric,
                                ],
                                sort_keys=True,
                            ).encode()
                        ).hexdigest()[:12]

                        def on_trial(
                            report: TrialReport, _parent: Any = run, _name: str = candidate.name
                        ) -> None:
                            with tracker.start_run(
                                f"{_name}#{report.number}",
                                parent=_parent,
                                tags={"role": "trial", "state": report.state},
                                **context,
                            ) as trial_run:
                                trial_run.log_params(report.params)
                                for i, s in enumerate(report.fold_scores):
                                    trial_run.log_metric(f"cv_{metric}", s, step=i)
                                if report.value is not None:
                                    trial_run.log_metric(f"objective_{metric}", report.value)
                                trial_run.log_metric("trial_seconds", report.seconds)

                        tuned = tune(
                            train,
                            candidate,
                            schema=schema,
                            problem=problem,
                            seed=seed,
                            metric=score,
                            greater_is_better=greater,
                            tuning=cfg.tuning,
                            cv=cfg.cv,
                            valid=valid,
                            storage=optuna_url(
                                project.store.engine.url.render_as_string(hide_password=False)
                            ),
                            study_name=f"{project.name}.{candidate.name}.{key}",
                            on_trial=on_trial,
                            progress=True,
                            metric_name=metric,
                        )
                        overrides = tuned.best_params
                        oof = tuned.best_oof
                        run.set_tags(
                            {
                                "study": tuned.study_name,
                                "best_trial": tuned.best_trial,
                                "trials_resumed": tuned.resumed,
                            }
                        )
                        run.log_metrics(
                            {
                                f"tuning_best_{metric}": tuned.best_value,
                                "trials_complete": tuned.complete,
                                "trials_pruned": tuned.pruned,
                            }
                        )
                    fitted = fit_candidate(
                        train,
                        candidate,
                        schema=schema,
                        problem=problem,
                        seed=seed,
                        overrides=overrides,
                    )
                    if cfg.cv is not None and not candidate.search:
                        cv_result = cross_validate(
                            build_pipeline(
                                candidate,
                                schema=schema,
                                problem=problem,
                                seed=seed,
                                features=fitted.features,
                            )[0],
                            train,
                            cv=cfg.cv,
                            problem=problem,
                            features=fitted.features,
                            metric=score,
                            seed=seed,
                        )
                        oof = cv_result.oof
                        for i, s in enumerate(cv_result.fold_scores):
                            run.log_metric(f"cv_{metric}", s, step=i)
                        run.log_metrics(
                            {f"cv_mean_{metric}": cv_result.mean, f"cv_std_{metric}": cv_result.std}
                        )
                    metrics = valid_metrics(fitted)
                    run.log_params(_jsonable(fitted.params))
                    run.log_metrics({f"valid_{k}": v for k, v in metrics.items()})
                    run.log_metric("fit_seconds", fitted.fit_seconds)
                    if oof is not None:
                        _log_oof(run, train, problem.target, oof)
                    results.append((fitted, metrics))

            ranked = sorted(
                results,
                key=lambda r: -r[1].get(metric, -np.inf) if greater else r[1].get(metric, np.inf),
            )
            best, best_metrics = ranked[0]
            best_candidate = next(c for c in cfg.candidates if c.name == best.name)
            final = best
            train_rows = len(train)
            if cfg.final_fit == "train_valid":
                both = pd.concat([train, valid], ignore_index=True)
                final = fit_candidate(
                    both,
                    best_candidate,
                    schema=schema,
                    problem=problem,
                    seed=seed,
                    overrides=best.params,
                )
                train_rows = len(both)
            parent.set_tags({"best": best.name})
            parent.log_metrics({f"best_valid_{metric}": best_metrics.get(metric, float("nan"))})

            report = run_model_tests(
                final.model,
                name=best.name,
                build=lambda: build_pipeline(
                    best_candidate,
                    schema=schema,
                    problem=problem,
                    seed=seed,
                    features=final.features,
                    overrides=final.params,
                )[0],
                train=train,
                sample=valid.sample(n=min(len(valid), 500), random_state=seed),
                problem=problem,
                features=final.features,
                tests=cfg.model_tests,
                seed=seed,
            )
            parent.set_tags({"model_tests_passed": report.passed})

            def record(fit: Any, metrics: dict[str, float], rows: int) -> TrainedModel:
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

            model_id = put_model(
                project, final.model, record(final, best_metrics, train_rows), parents
            )
            baseline_id = put_model(
                project, baseline.model, record(baseline, base_metrics, len(train)), parents
            )
            with project.store.staging() as folder:
                (folder / "model_tests.json").write_text(report.model_dump_json(indent=1))
                tests_id = project.store.put(
                    folder, kind="model_tests", record=report, parents={"model": model_id}
                )
            parent.set_tags({"model_id": model_id, "baseline_id": baseline_id})
        tracker.flush()
        summary = {
            "best": best.name,
            "valid": {r[0].name: round(r[1].get(metric, float("nan")), 4) for r in results}
            | {f"baseline_{k}": round(v, 4) for k, v in baseline_scores.items()},
            "fit_seconds": round(best.fit_seconds, 2),
            "model_tests": report_summary(report),
            "run": parent.id,
        }
        return StepResult(
            {"model": model_id, "baseline": baseline_id, "model_tests": tests_id}, summary
        )


def _log_oof(run: Any, train: pd.DataFrame, target: str, oof: np.ndarray) -> None:
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
