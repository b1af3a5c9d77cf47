"""Model bundles: one content-addressed folder with everything a deployed model needs.

Layout: ``model.joblib`` (fitted sklearn pipeline), ``schema.json`` (the data
contract), ``meta.json`` (:class:`~mlcycle.artifacts.BundleMeta`),
``profile.json`` (reference profile), ``reference.parquet`` (a sample of
training rows for drift tests), ``evaluation.json``, ``blessing.json`` and a
generated ``MODEL_CARD.md``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from mlcycle.artifacts import Blessing, BundleMeta, Evaluation, Profile
from mlcycle.schema import Schema
from mlcycle.spec import Problem

REFERENCE_ROWS = 50_000


def write_bundle(
    folder: Path,
    *,
    model_file: Path,
    schema: Schema,
    meta: BundleMeta,
    profile: Profile,
    reference: pd.DataFrame,
    evaluation: Evaluation,
    blessing: Blessing,
    problem: Problem,
    seed: int = 0,
) -> None:
    """Fill ``folder`` (a staging folder) with a complete bundle."""
    shutil.copyfile(model_file, folder / "model.joblib")
    (folder / "schema.json").write_text(schema.model_dump_json(indent=1), encoding="utf-8")
    (folder / "meta.json").write_text(meta.model_dump_json(indent=1), encoding="utf-8")
    (folder / "profile.json").write_text(profile.model_dump_json(), encoding="utf-8")
    (folder / "evaluation.json").write_text(evaluation.model_dump_json(indent=1), encoding="utf-8")
    (folder / "blessing.json").write_text(blessing.model_dump_json(indent=1), encoding="utf-8")
    if len(reference) > REFERENCE_ROWS:
        reference = reference.sample(REFERENCE_ROWS, random_state=seed).sort_index()
    reference.reset_index(drop=True).to_parquet(folder / "reference.parquet", index=False)
    (folder / "MODEL_CARD.md").write_text(
        model_card(meta, evaluation, blessing, problem), encoding="utf-8"
    )


def read_meta(folder: Path) -> BundleMeta:
    return BundleMeta.model_validate_json((folder / "meta.json").read_text(encoding="utf-8"))


def read_schema(folder: Path) -> Schema:
    return Schema.model_validate_json((folder / "schema.json").read_text(encoding="utf-8"))


def model_card(
    meta: BundleMeta, evaluation: Evaluation, blessing: Blessing, problem: Problem
) -> str:
    """A short, generated model card: what the model is for and how well it does."""
    lines = [
        f"# Model card: {meta.name}",
        "",
        "## Intended use",
        f"Predicts `{problem.target}` ({problem.task}"
        + (
            f", positive label `{problem.positive_label}`"
            if problem.positive_label is not None
            else ""
        )
        + f") from {len(meta.features)} features: {', '.join(meta.features)}.",
        "",
        "## Training data",
        f"Dataset version `{meta.dataset_id[:12]}`; spec hash `{meta.spec_hash[:12]}`; "
        f"git `{meta.git_sha or 'n/a'}`; built {meta.created_at} "
        f"with mlcycle {meta.mlcycle_version}.",
        "",
        f"## Holdout metrics ({evaluation.rows} rows)",
        "| metric | model | baseline |",
        "|---|---|---|",
    ]
    base = evaluation.metrics.get("baseline", {})
    for name, value in evaluation.metrics["candidate"].items():
        other = base.get(name)
        lines.append(f"| {name} | {value:.4f} | {'' if other is None else f'{other:.4f}'} |")
    lines += ["", "## Gate", f"Blessed: **{blessing.blessed}**", ""]
    lines += [f"- {'✔' if c.passed else '✘'} {c.name}: {c.detail}" for c in blessing.checks]
    lines += [
        "",
        "## Known limitations",
        "- Judged on a single holdout from the training period; monitor drift after deployment.",
        "- Inputs outside the training ranges or with unseen categories are "
        + ("rejected." if meta.unseen_category == "reject" else "scored as 'unknown'."),
        "",
    ]
    return "\n".join(lines)
