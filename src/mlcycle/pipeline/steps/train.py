"""The training step: the train and valid splits to the best model, its baseline and
its model tests (the stage is :func:`mlcycle.train.train`)."""

from __future__ import annotations

from mlcycle.pipeline.catalog import Inputs
from mlcycle.pipeline.context import RunContext
from mlcycle.pipeline.runner import Step, StepResult

ML_LIBS = ("scikit-learn", "numpy", "pandas", "scipy")


class Train(Step):
    """Splits → the best candidate (by validation score), the naive baseline, model tests."""

    name = "train"
    inputs = ("dataset", "splits")
    outputs = ("model", "baseline", "model_tests")
    sections = ("problem", "train")
    libraries = (*ML_LIBS, "optuna", "lightgbm")
    revision = 2

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        # Stage imports live in run(): a cached step must not pay for scikit-learn.
        from mlcycle.evaluate import compute_metrics
        from mlcycle.train import Tracking, train
        from mlcycle.train.tracking import get_tracker, split_git_sha
        from mlcycle.train.tuning import optuna_url

        spec, catalog = ctx.spec, ctx.catalog
        sha, dirty = split_git_sha(ctx.git_sha)
        tracking = Tracking(
            get_tracker(ctx.store),
            experiment=ctx.name,
            tags={
                "seed": spec.train.seed,
                "dataset_id": inputs.id("dataset"),
                "spec_hash": spec.hash(),
                "git_sha": sha,
                "git_dirty": dirty,
            },
            study_key=inputs.id("splits"),
            optuna_storage=optuna_url(ctx.store.engine.url.render_as_string(hide_password=False)),
        )
        result = train(
            inputs.split("train"),
            inputs.split("valid"),
            schema=inputs.dataset.schema_,
            problem=spec.problem,
            cfg=spec.train,
            tracking=tracking,
            metrics=compute_metrics,
        )
        parents = inputs.pick("dataset", "splits")
        model_id = catalog.save_model(result.model.model, result.record, parents)
        baseline_id = catalog.save_model(result.baseline.model, result.baseline_record, parents)
        tests_id = catalog.save_model_tests(result.model_tests, model_id=model_id)
        tracking.finish({"model_id": model_id, "baseline_id": baseline_id})
        return StepResult(
            {"model": model_id, "baseline": baseline_id, "model_tests": tests_id}, result.summary
        )
