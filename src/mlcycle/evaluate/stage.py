"""The evaluation stage as the lifecycle calls it: fitted models and holdout rows in,
typed records out.

:func:`evaluate` scores the candidate and its baseline on the test split once
and returns those scores with the :class:`~mlcycle.artifacts.Evaluation`; the
gate reuses them (for the champion comparison and the infra check's parity)
instead of scoring the candidate again. :func:`compare_with_champion` is the
paired comparison the gate judges. Neither knows where models or rows are
stored.

Example:
    >>> result = evaluate(test, valid, {"candidate": (model, record), "baseline": (b, brec)},
    ...                   problem=spec.problem, options=options_from(spec.evaluate, seed=42))
    >>> result.evaluation.metrics["candidate"]["roc_auc"], result.scores["candidate"].shape
    (0.71, (5000,))
    >>> evidence, champion_scores = compare_with_champion(
    ...     test, result.scores["candidate"], champion_model, champion_features,
    ...     version=3, problem=spec.problem, classes=record.classes, options=options)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.artifacts import (
    Blessing,
    ChampionEvidence,
    Evaluation,
    PairedComparison,
    SliceComparison,
    TrainedModel,
)
from mlcycle.evaluate.compare import compare_models
from mlcycle.evaluate.holdout import (
    Options,
    compare_slices,
    details_for,
    evaluate_holdout,
    slice_masks,
)
from mlcycle.evaluate.learning import CurveOptions, LearningCurveResult, learning_curve
from mlcycle.evaluate.metrics import compute_metrics, scores_for
from mlcycle.spec import EvaluateSection, Problem

logger = logging.getLogger("mlcycle.evaluate")

#: A fitted model (a scikit-learn pipeline) and its record.
Scored = tuple[Any, TrainedModel]


@dataclass
class HoldoutResult:
    """The evaluation, what its report draws, and each role's scores on the test rows.

    ``learning_curve`` is the candidate's learning curve when it was drawn (it is
    also in ``details["learning_curve"]``, which the report reads).
    """

    evaluation: Evaluation
    details: dict[str, Any]
    scores: dict[str, np.ndarray]
    learning_curve: LearningCurveResult | None = None


def options_from(section: EvaluateSection, seed: int) -> Options:
    """The spec's ``evaluate:`` section as evaluation options.

    Example:
        >>> options_from(spec.evaluate, seed=42).n_boot
        1000
    """
    return Options(
        n_boot=section.bootstrap,
        seed=seed,
        confidence=section.confidence,
        slices=list(section.slices),
        min_slice_rows=section.min_slice_rows,
        max_slice_values=section.max_slice_values,
        bins=section.calibration_bins,
        learning_curve=CurveOptions(
            enabled=section.learning_curve.enabled,
            sizes=tuple(section.learning_curve.sizes),
            max_rows=section.learning_curve.max_rows,
        ),
    )


def evaluate(
    test: pd.DataFrame,
    valid: pd.DataFrame,
    models: Mapping[str, Scored],
    *,
    problem: Problem,
    options: Options,
    train: pd.DataFrame | None = None,
    time_ordered: bool = False,
) -> HoldoutResult:
    """Holdout metrics with intervals, slices, calibration and benefit for every role.

    ``models`` maps a role (``candidate``, ``baseline``) to its fitted model and
    record; the candidate's record gives the class order. The validation rows
    are scored only when the benefit threshold is to be chosen on them. With the
    ``train`` rows and ``options.learning_curve.enabled``, the candidate's
    learning curve is drawn too (:mod:`mlcycle.evaluate.learning`;
    ``time_ordered``: the split is by time, so subsets are the most recent rows).

    Example:
        >>> result = evaluate(test, valid, {"candidate": (m, rec), "baseline": (b, brec)},
        ...                   problem=spec.problem, options=Options(n_boot=200))
        >>> sorted(result.scores)
        ['baseline', 'candidate']
    """
    scores: dict[str, np.ndarray] = {}
    valid_scores: dict[str, np.ndarray] = {}
    wants_valid = problem.task == "binary" and problem.benefit is not None and len(valid) > 0
    for role, (model, record) in models.items():
        scores[role] = _scores(problem, model, test[record.features])
        if wants_valid:
            valid_scores[role] = _scores(problem, model, valid[record.features])
    missing = [c for c in options.slices if c not in test.columns]
    if missing:
        slice_masks(test, missing, 1)  # raises BadInput naming the column
    evaluation, details = evaluate_holdout(
        problem.task,
        problem.metric,
        test[problem.target].to_numpy(),
        scores,
        positive_label=problem.positive_label,
        classes=models["candidate"][1].classes,
        slice_frame=test[options.slices] if options.slices else None,
        options=options,
        benefit=problem.benefit.model_dump() if problem.benefit else None,
        valid=(valid[problem.target].to_numpy(), valid_scores) if valid_scores else None,
    )
    curve = None
    if train is not None and options.learning_curve.enabled:
        fitted, record = models["candidate"]
        try:
            curve = learning_curve(
                train,
                valid,
                fitted,
                record,
                problem=problem,
                baseline=models["baseline"][0] if "baseline" in models else None,
                options=options.learning_curve,
                seed=options.seed,
                time_ordered=time_ordered,
            )
            details["learning_curve"] = curve.to_dict()
        except Exception as exc:  # a diagnostic: a model that cannot be refitted keeps its verdict
            logger.warning("no learning curve: %s: %s", type(exc).__name__, exc)
            details["learning_curve_error"] = f"{type(exc).__name__}: {exc}"
    return HoldoutResult(evaluation, details, scores, curve)


def compare_with_champion(
    test: pd.DataFrame,
    candidate_scores: np.ndarray,
    champion_model: Any,
    champion_features: list[str],
    *,
    version: int,
    problem: Problem,
    classes: list[Any] | None,
    options: Options,
) -> tuple[ChampionEvidence, np.ndarray | None]:
    """The champion scored on the same test rows and compared with the candidate, paired.

    Returns the evidence the gate judges and the champion's scores (``None``,
    and evidence without a comparison, when the champion reads a column the
    test rows lack).

    Example:
        >>> evidence, scores = compare_with_champion(test, cand_scores, champion, features,
        ...                                          version=3, problem=spec.problem,
        ...                                          classes=None, options=Options())
        >>> evidence.comparison.test
        'delong'
    """
    if [c for c in champion_features if c not in test.columns]:
        return ChampionEvidence(version=version), None
    champion_scores = _scores(problem, champion_model, test[champion_features])
    y_test = test[problem.target].to_numpy()
    comparison = compare_models(
        problem.task,
        problem.metric,
        y_test,
        candidate_scores,
        champion_scores,
        positive_label=problem.positive_label,
        classes=classes,
        n_boot=options.n_boot or 1000,
        seed=options.seed,
        confidence=options.confidence,
    )
    metrics = compute_metrics(
        problem.task,
        y_test,
        champion_scores,
        positive_label=problem.positive_label,
        classes=classes,
    )
    slices: list[dict[str, Any]] = []
    usable = [c for c in options.slices if c in test.columns]
    if usable:
        slices = compare_slices(
            problem.task,
            problem.metric,
            y_test,
            candidate_scores,
            champion_scores,
            test[usable],
            positive_label=problem.positive_label,
            classes=classes,
            options=replace(options, slices=usable),
        )
    evidence = ChampionEvidence(
        version=version,
        comparison=PairedComparison.model_validate(comparison),
        slices=[SliceComparison.model_validate(s) for s in slices],
        metrics=metrics,
    )
    return evidence, champion_scores


def champion_details(
    test: pd.DataFrame,
    champion_scores: np.ndarray,
    *,
    problem: Problem,
    classes: list[Any] | None,
    options: Options,
) -> dict[str, Any]:
    """What the report draws for the champion (as :func:`evaluate` gives for the others).

    Example:
        >>> sorted(champion_details(test, scores, problem=p, classes=None, options=Options()))
        ['calibration', 'confusion', 'curves']
    """
    return details_for(
        problem.task,
        test[problem.target].to_numpy(),
        champion_scores,
        problem.positive_label,
        classes,
        options.bins,
    )


def report_data(
    project: str,
    evaluation: Evaluation,
    details: dict[str, Any],
    blessing: Blessing,
    *,
    problem: Problem,
    champion: ChampionEvidence | None,
    champion_details: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the evaluation report shows (``render_html`` draws it; it is also kept as JSON).

    Example:
        >>> data = report_data("flights", evaluation, details, blessing, problem=spec.problem,
        ...                    champion=None, champion_details=None)
        >>> render_html(data)
    """
    roles = dict(details.get("roles", {}))
    if champion_details is not None:
        roles["champion"] = champion_details
    shown = None
    if champion is not None:
        comparison = champion.comparison
        shown = {
            "version": champion.version,
            "metrics": champion.metrics,
            "comparison": None if comparison is None else comparison.model_dump(exclude_unset=True),
            "slices": [s.model_dump(exclude_unset=True) for s in champion.slices] or None,
        }
    return {
        "project": project,
        "evaluation": evaluation.model_dump(mode="json"),
        "details": details | {"roles": roles},
        "champion": shown,
        "blessing": blessing.model_dump(mode="json"),
        "benefit_matrix": problem.benefit.model_dump() if problem.benefit else None,
    }


def _scores(problem: Problem, model: Any, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(scores_for(problem.task, model, rows, problem.positive_label))
