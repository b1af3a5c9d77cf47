"""The gate: build the bundle, check it, judge it, and commit it as one artifact.

The infra check needs the bundle's serving files and the bundle holds the
verdict; both fit in one staging folder:

1. the serving and monitoring files are written (``Bundle.write_serving``, the
   ONNX export when it passes parity, monitoring's outlier model);
2. the infra check loads exactly those files in a fresh process through the
   serving code, and the policy judges the evaluation, the champion comparison,
   the model tests and the infra check (:func:`mlcycle.registry.judge`);
3. the evidence is added (``Bundle.write_evidence``) and the folder is committed
   once as the ``bundle`` artifact. The Register step then registers it, blessed
   or not; only Promote depends on the verdict.

The candidate's test scores come from the evaluation artifact: nothing is
scored or read twice.
"""

from __future__ import annotations

import json
import logging
import platform
from typing import Any

import numpy as np

from mlcycle import registry
from mlcycle.artifacts import Blessing, BundleMeta, ChampionEvidence
from mlcycle.bundle import Bundle
from mlcycle.errors import NotFound
from mlcycle.pipeline.catalog import Inputs
from mlcycle.pipeline.context import RunContext
from mlcycle.pipeline.infra import infra_check
from mlcycle.pipeline.runner import Step, StepResult
from mlcycle.pipeline.steps.train import ML_LIBS

logger = logging.getLogger("mlcycle.pipeline")


def champion_of(ctx: RunContext) -> tuple[int, Bundle] | None:
    """The reigning champion of the project (version and bundle), if there is one.

    Example:
        >>> version, bundle = champion_of(project.context())
        >>> bundle.meta().name
        'flights'
    """
    try:
        resolved = ctx.registry.resolve(f"{ctx.name}@champion")
    except NotFound:
        return None
    return resolved.version, ctx.catalog.bundle(resolved.bundle_id)


class Gate(Step):
    """Evaluation (+ champion, + model tests) → bundle → infra check → Blessing and bundle."""

    name = "gate"
    inputs = ("evaluation", "model", "baseline", "splits", "dataset")
    optional_inputs = ("model_tests",)
    outputs = ("blessing", "bundle")
    sections = ("project", "problem", "gates", "evaluate", "serve", "train")
    libraries = (*ML_LIBS, "pyarrow")
    # 7: the outlier model takes the profile's ranges and categories
    revision = 8  # 8: out_of_range, seasonal in meta.json; 6: its decision threshold

    def key_extra(self, ctx: RunContext) -> str:
        # meta.json records the seasonal columns; the rest of `data` is covered by the inputs.
        return ",".join(sorted(ctx.spec.data.features.seasonal))

    def still_valid(self, ctx: RunContext, result: StepResult) -> bool:
        # The verdict holds while the champion it was judged against still reigns,
        # or once this very model has become the champion.
        champion = champion_of(ctx)
        if champion is None:
            return result.summary.get("champion_version") is None
        version, bundle = champion
        return version == result.summary.get("champion_version") or (
            bundle.meta().model_artifact_id == result.summary.get("model")
        )

    def run(self, ctx: RunContext, inputs: Inputs) -> StepResult:
        registry.check_policy(ctx.spec.problem.task, ctx.spec.gates)  # fails before any work
        champion, champion_scores = _champion_evidence(ctx, inputs)
        with ctx.catalog.new_bundle() as bundle:
            meta = _write_serving(ctx, inputs, bundle)
            infra = None
            if ctx.spec.gates.infra_check:
                infra = infra_check(
                    bundle.folder,
                    inputs.split("test"),
                    inputs.model.record,
                    inputs.evaluation.scores["candidate"],
                    problem_task=ctx.spec.problem.task,
                    positive_label=ctx.spec.problem.positive_label,
                    latency_budget_ms=ctx.spec.problem.latency_budget_ms,
                    max_bundle_mb=ctx.spec.gates.max_bundle_mb,
                )
            evaluation = inputs.evaluation.evaluation
            blessing = registry.judge(
                evaluation,
                ctx.spec.gates,
                champion,
                model_tests=inputs.model_tests,
                infra=infra,
            )
            blessing_id = ctx.catalog.save_blessing(
                blessing, parents=inputs.pick("evaluation", "model", "model_tests")
            )
            report = _report(ctx, inputs, blessing, champion, champion_scores)
            bundle_id = _finish_bundle(ctx, inputs, bundle, meta, blessing, blessing_id, report)
        return StepResult(
            {"blessing": blessing_id, "bundle": bundle_id},
            {
                "blessed": blessing.blessed,
                "failed": [c.detail for c in blessing.failures],
                "champion_version": None if champion is None else champion.version,
                "model": inputs.id("model"),
                "report": str(ctx.catalog.bundle(bundle_id).report_html_path),
            },
        )


def _champion_evidence(
    ctx: RunContext, inputs: Inputs
) -> tuple[ChampionEvidence | None, np.ndarray | None]:
    """The champion scored on the test rows and compared with the candidate, paired."""
    from mlcycle import evaluate  # here, like every SciPy user: cached gates stay light

    champion = champion_of(ctx)
    if champion is None:
        return None, None
    version, bundle = champion
    meta = bundle.meta()
    test = inputs.split("test")
    model = bundle.load_model() if all(c in test.columns for c in meta.features) else None
    return evaluate.compare_with_champion(
        test,
        inputs.evaluation.scores["candidate"],
        model,
        meta.features,
        version=version,
        problem=ctx.spec.problem,
        classes=inputs.model.record.classes,
        options=evaluate.options_from(ctx.spec.evaluate, seed=ctx.spec.train.seed),
    )


def _write_serving(ctx: RunContext, inputs: Inputs, bundle: Bundle) -> BundleMeta:
    """Everything serving or monitoring loads, so the infra check runs on exactly that."""
    from mlcycle.monitor.anomaly import fit_outlier_model
    from mlcycle.registry.export import try_export_bundle
    from mlcycle.registry.native import try_compile_bundle

    spec, model = ctx.spec, inputs.model
    meta = registry.bundle_meta(
        name=ctx.name,
        problem=spec.problem,
        record=model.record,
        evaluation=inputs.evaluation.evaluation,
        dataset_id=inputs.id("dataset"),
        model_id=model.id,
        spec_hash=spec.hash(),
        git_sha=ctx.git_sha,
        created_at=ctx.catalog.created_at(model.id),
        unseen_category=spec.serve.unseen_category,
        out_of_range=spec.serve.out_of_range,
        seasonal=spec.data.features.seasonal,
    )
    train = inputs.split("train")
    reference = [c for c in (*model.record.features, spec.problem.target) if c in train.columns]
    bundle.write_serving(
        model_file=model.file,
        schema=inputs.dataset.schema_,
        meta=meta,
        profile=inputs.dataset.profile,
        reference=train[reference],
        seed=spec.train.seed,
    )
    try:
        fit_outlier_model(bundle.folder, seed=spec.train.seed)
    except Exception as exc:  # anomaly scores are a bonus; the bundle is not
        bundle.outliers_path.unlink(missing_ok=True)
        logging.getLogger("mlcycle.monitor").warning("no outlier model in the bundle: %s", exc)
    # onnx/, and native/ (a compiled tree ensemble), when each passes parity on the
    # holdout rows (read once per step); neither ever fails the run
    try_export_bundle(bundle.folder, inputs.split("test"))
    if spec.serve.native:
        try_compile_bundle(bundle.folder, inputs.split("test"))
    return meta


def _report(
    ctx: RunContext,
    inputs: Inputs,
    blessing: Blessing,
    champion: ChampionEvidence | None,
    champion_scores: np.ndarray | None,
) -> dict[str, Any]:
    from mlcycle import evaluate

    saved = inputs.evaluation
    return evaluate.report_data(
        ctx.name,
        saved.evaluation,
        saved.details,
        blessing,
        problem=ctx.spec.problem,
        champion=champion,
        champion_details=None
        if champion_scores is None
        else evaluate.champion_details(
            inputs.split("test"),
            champion_scores,
            problem=ctx.spec.problem,
            classes=inputs.model.record.classes,
            options=evaluate.options_from(ctx.spec.evaluate, seed=ctx.spec.train.seed),
        ),
    )


def _finish_bundle(
    ctx: RunContext,
    inputs: Inputs,
    bundle: Bundle,
    meta: BundleMeta,
    blessing: Blessing,
    blessing_id: str,
    report_data: dict[str, Any],
) -> str:
    """Add the evidence beside the checked serving files and commit the bundle once."""
    from mlcycle.evaluate.report import render_html

    evaluation = inputs.evaluation.evaluation
    lineage = registry.lineage_record(
        inputs.dataset,
        ids=inputs.pick("dataset", "model", "evaluation") | {"blessing": blessing_id},
        spec_hash=meta.spec_hash,
        git_sha=meta.git_sha,
        run_id=ctx.run_id,
    )
    bundle.write_evidence(
        evaluation=evaluation,
        blessing=blessing,
        card=registry.model_card(meta, evaluation, blessing, ctx.spec.problem, lineage),
        lineage=lineage,
        report_html=render_html(report_data),
        report_json=json.dumps(report_data, indent=1, default=str),
    )
    return ctx.catalog.save_bundle(
        bundle,
        record={
            "name": ctx.name,
            "blessed": blessing.blessed,
            "spec_hash": meta.spec_hash,
            "git_sha": meta.git_sha,
            "run_id": ctx.run_id,
            "host": platform.node(),
        },
        parents=inputs.pick("model", "baseline", "evaluation", "dataset")
        | {"blessing": blessing_id},
    )
