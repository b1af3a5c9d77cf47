"""The catalog: typed artifacts in, typed artifacts out; the pipeline's only file and SQL I/O.

Stages take and return the records of :mod:`mlcycle.artifacts` and data
frames; the catalog is what turns an artifact id into those (and back). Each
artifact kind has a loader and a saver here, so the layout of every artifact's
folder is spelled in one place (a bundle's own layout is
:class:`mlcycle.bundle.Bundle`'s):

- ``dataset``: ``data.parquet`` → :class:`DatasetVersion` + its frame;
- ``validation``: ``report.json`` → :class:`ValidationReport`;
- ``splits``: ``train|valid|test.parquet`` → :class:`Splits` + frames;
- ``model``: the fitted pipeline (named as in a bundle) → :class:`LoadedModel`;
- ``model_tests``: ``model_tests.json`` → :class:`ModelTestReport`;
- ``evaluation``: the evaluation record (named as in a bundle), ``details.json``
  (what the report draws) and ``scores.parquet`` (each role's test-split
  scores, for the gate) → :class:`SavedEvaluation`;
- ``blessing``: the verdict (named as in a bundle) → :class:`Blessing`;
- ``bundle``: one folder, see :class:`~mlcycle.bundle.Bundle`.

The store adds ``record.json`` (the typed record) to every artifact and one
lineage edge per parent. The pipeline's own records (runs, step runs, the step
cache) are :mod:`mlcycle.pipeline.runlog`'s.

:class:`Inputs` is how a step sees its inputs: the runner hands it the ids, and
each typed accessor loads through the catalog once, on first use.

Example:
    >>> catalog = Catalog(store)
    >>> splits_id = catalog.save_splits(record, frames, dataset_id=dataset_id)
    >>> catalog.split_frame(splits_id, "test").shape
    (5000, 12)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from mlcycle.artifacts import (
    Blessing,
    DatasetVersion,
    Evaluation,
    ModelTestReport,
    Splits,
    TrainedModel,
    ValidationReport,
)
from mlcycle.bundle import BLESSING_FILE, EVALUATION_FILE, MODEL_FILE, Bundle
from mlcycle.errors import BadInput
from mlcycle.spec import Source
from mlcycle.store import Store
from mlcycle.store import tables as t

if TYPE_CHECKING:
    from mlcycle.data.ingest import IngestResult
    from mlcycle.data.landing import Partition

# A model, an evaluation and a blessing artifact name their main file as the bundle
# does (the same content under the same name), so those names come from the Bundle.
DATA_FILE = "data.parquet"
VALIDATION_FILE = "report.json"
MODEL_TESTS_FILE = "model_tests.json"
DETAILS_FILE = "details.json"
SCORES_FILE = "scores.parquet"
SPLIT_NAMES = ("train", "valid", "test")
# Where and when a bundle was built (see save_bundle), not part of its identity.
BUNDLE_VOLATILE_FIELDS = ("run_id", "host")


@dataclass
class SavedEvaluation:
    """An evaluation artifact: the record, what its report draws, each role's test scores."""

    evaluation: Evaluation
    details: dict[str, Any]
    scores: dict[str, np.ndarray]


@dataclass
class LoadedModel:
    """A model artifact: its id, its record and (loaded on first use) the fitted pipeline."""

    id: str
    record: TrainedModel
    catalog: Catalog = field(repr=False)

    @functools.cached_property
    def fitted(self) -> Any:
        return self.catalog.fitted_model(self.id)

    @property
    def file(self) -> Path:
        return self.catalog.model_file(self.id)


class Catalog:
    """Typed load/save of every artifact the lifecycle passes between stages."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- any artifact -------------------------------------------------------------------

    def has(self, artifact_id: str) -> bool:
        return self.store.has(artifact_id)

    def created_at(self, artifact_id: str) -> str:
        """When the artifact was first stored (what a bundle's meta records for its model)."""
        with self.store.engine.connect() as conn:
            value = conn.execute(
                sa.select(t.artifacts.c.created_at).where(t.artifacts.c.id == artifact_id)
            )
            return str(value.scalar())

    # --- data ---------------------------------------------------------------------------

    def land(self, source: Source, base_dir: Path, *, id_column: str | None) -> IngestResult:
        """Ingest what is new in ``source`` as a raw partition."""
        from mlcycle.data.ingest import ingest

        return ingest(self.store, source, base_dir, id_column=id_column)

    def raw(self, source: Source) -> tuple[list[Partition], pd.DataFrame]:
        """The usable landed partitions of ``source`` and their rows as one frame."""
        from mlcycle.data.build import raw_frame

        parts, frame = raw_frame(self.store, source)
        return list(parts), frame

    def partitions(self, source_name: str) -> list[Partition]:
        """Every landed partition of a source, quarantined ones included, in landing order."""
        from mlcycle.data.landing import list_partitions

        return list(list_partitions(self.store, source_name))

    def save_dataset(self, record: DatasetVersion, frame: pd.DataFrame) -> str:
        with self.store.staging() as folder:
            frame.to_parquet(folder / DATA_FILE, index=False)
            return self.store.put(folder, kind="dataset", record=record)

    def dataset(self, dataset_id: str) -> DatasetVersion:
        return DatasetVersion.model_validate(self.store.record(dataset_id))

    def dataset_frame(self, dataset_id: str) -> pd.DataFrame:
        return pd.read_parquet(self.store.path(dataset_id) / DATA_FILE)

    def previous_valid(self, source_name: str, *, excluding: str) -> DatasetVersion | None:
        """The newest valid version of the source other than ``excluding``, if any."""
        from mlcycle.data.landing import previous_valid

        previous_id = previous_valid(self.store, source_name, excluding=excluding)
        return None if previous_id is None else self.dataset(previous_id)

    def save_validation(
        self,
        report: ValidationReport,
        *,
        dataset_id: str,
        record: DatasetVersion,
        quarantine: list[str],
    ) -> str:
        """Store the report and record the version as valid or quarantined.

        ``quarantine``: the ids of the raw partitions to take out of every later
        version (the ones this version added, when it broke the contract).
        """
        from mlcycle.data import landing

        with self.store.staging() as folder:
            (folder / VALIDATION_FILE).write_text(report.model_dump_json(indent=1))
            report_id = self.store.put(
                folder, kind="validation", record=report, parents={"dataset": dataset_id}
            )
        reason = None if report.ok else "; ".join(v.message for v in report.errors[:5])
        landing.set_status(
            self.store,
            dataset_id,
            source=record.source_name,
            valid=report.ok,
            validation_id=report_id,
            reason=reason,
        )
        if quarantine:
            landing.quarantine(self.store, quarantine)
        return report_id

    def dataset_status(self, dataset_id: str) -> dict[str, Any] | None:
        """The version's validation status (``valid``/``invalid`` and why), if validated."""
        from mlcycle.data.landing import status_of

        return status_of(self.store, dataset_id)

    # --- splits -------------------------------------------------------------------------

    def save_splits(
        self, record: Splits, frames: Mapping[str, pd.DataFrame], *, dataset_id: str
    ) -> str:
        with self.store.staging() as folder:
            for name, part in frames.items():
                part.to_parquet(folder / f"{name}.parquet", index=False)
            return self.store.put(
                folder, kind="splits", record=record, parents={"dataset": dataset_id}
            )

    def splits(self, splits_id: str) -> Splits:
        return Splits.model_validate(self.store.record(splits_id))

    def split_frame(self, splits_id: str, name: str) -> pd.DataFrame:
        if name not in SPLIT_NAMES:
            raise BadInput(f"no split '{name}'", f"splits are {', '.join(SPLIT_NAMES)}", "")
        return pd.read_parquet(self.store.path(splits_id) / f"{name}.parquet")

    # --- models -------------------------------------------------------------------------

    def save_model(self, fitted: Any, record: TrainedModel, parents: dict[str, str]) -> str:
        import joblib

        with self.store.staging() as folder:
            joblib.dump(fitted, folder / MODEL_FILE)
            return self.store.put(folder, kind="model", record=record, parents=parents)

    def model(self, model_id: str) -> LoadedModel:
        return LoadedModel(model_id, self.trained_model(model_id), self)

    def trained_model(self, model_id: str) -> TrainedModel:
        return TrainedModel.model_validate(self.store.record(model_id))

    def model_file(self, model_id: str) -> Path:
        return self.store.path(model_id) / MODEL_FILE

    def fitted_model(self, model_id: str) -> Any:
        """The fitted scikit-learn pipeline (unpickled: the store is trusted)."""
        import joblib

        return joblib.load(self.model_file(model_id))

    def save_model_tests(self, report: ModelTestReport, *, model_id: str) -> str:
        with self.store.staging() as folder:
            (folder / MODEL_TESTS_FILE).write_text(report.model_dump_json(indent=1))
            return self.store.put(
                folder, kind="model_tests", record=report, parents={"model": model_id}
            )

    def model_tests(self, tests_id: str) -> ModelTestReport:
        return ModelTestReport.model_validate(self.store.record(tests_id))

    # --- evaluation and verdict ---------------------------------------------------------

    def save_evaluation(self, saved: SavedEvaluation, parents: dict[str, str]) -> str:
        with self.store.staging() as folder:
            (folder / EVALUATION_FILE).write_text(saved.evaluation.model_dump_json(indent=1))
            (folder / DETAILS_FILE).write_text(json.dumps(saved.details))
            _scores_frame(saved.scores).to_parquet(folder / SCORES_FILE, index=False)
            return self.store.put(
                folder, kind="evaluation", record=saved.evaluation, parents=parents
            )

    def evaluation(self, evaluation_id: str) -> SavedEvaluation:
        """The evaluation with its report details and the test scores it was computed from."""
        folder = self.store.path(evaluation_id)
        return SavedEvaluation(
            evaluation=Evaluation.model_validate(self.store.record(evaluation_id)),
            details=json.loads((folder / DETAILS_FILE).read_text()),
            scores=_scores_dict(pd.read_parquet(folder / SCORES_FILE)),
        )

    def save_blessing(self, blessing: Blessing, parents: dict[str, str]) -> str:
        with self.store.staging() as folder:
            (folder / BLESSING_FILE).write_text(blessing.model_dump_json(indent=1))
            return self.store.put(folder, kind="blessing", record=blessing, parents=parents)

    def blessing(self, blessing_id: str) -> Blessing:
        return Blessing.model_validate(self.store.record(blessing_id))

    # --- bundles ------------------------------------------------------------------------

    @contextmanager
    def new_bundle(self) -> Iterator[Bundle]:
        """A bundle to write in a staging folder; commit it with :meth:`save_bundle`."""
        with self.store.staging() as folder:
            yield Bundle.create(folder)

    def save_bundle(self, bundle: Bundle, record: dict[str, Any], parents: dict[str, str]) -> str:
        """Commit a staged bundle, whole, as one artifact.

        The run that built it and the host it ran on say where it was made, not
        what it is: they stay out of the hashed ``record.json`` (SQL row only).
        """
        return self.store.put(
            bundle.folder,
            kind="bundle",
            record=record,
            parents=parents,
            volatile=BUNDLE_VOLATILE_FIELDS,
        )

    def bundle(self, bundle_id: str) -> Bundle:
        """The committed bundle, verified against its id: callers unpickle what is in it."""
        bundle = Bundle.open(self.store.path(bundle_id))
        bundle.verify(bundle_id)
        return bundle


def _scores_frame(scores: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One column per role (``role:k`` per class for a probability matrix)."""
    columns: dict[str, np.ndarray] = {}
    for role, values in scores.items():
        array = np.asarray(values, dtype="float64")
        if array.ndim == 1:
            columns[role] = array
        else:
            for k in range(array.shape[1]):
                columns[f"{role}:{k}"] = array[:, k]
    return pd.DataFrame(columns)


def _scores_dict(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    roles: dict[str, list[str]] = {}
    for column in frame.columns:
        roles.setdefault(str(column).split(":", 1)[0], []).append(str(column))
    out: dict[str, np.ndarray] = {}
    for role, columns in roles.items():
        if columns == [role]:
            out[role] = frame[role].to_numpy(dtype="float64")
        else:
            ordered = sorted(columns, key=lambda c: int(c.split(":", 1)[1]))
            out[role] = frame[ordered].to_numpy(dtype="float64")
    return out


class Inputs:
    """A step's inputs: their ids, and typed accessors that load each one once.

    Only the inputs the step declared are reachable; asking for another raises
    ``KeyError`` naming it.

    Example:
        >>> inputs = Inputs(catalog, {"splits": splits_id, "model": model_id})
        >>> inputs.split("test").shape, inputs.model.record.name
        ((5000, 12), 'hgb')
    """

    def __init__(self, catalog: Catalog, ids: Mapping[str, str]) -> None:
        self.catalog = catalog
        self.ids = dict(ids)
        self._frames: dict[str, pd.DataFrame] = {}

    def __contains__(self, name: object) -> bool:
        return name in self.ids

    def id(self, name: str) -> str:
        """The artifact id of the input ``name``."""
        try:
            return self.ids[name]
        except KeyError:
            raise KeyError(f"input '{name}' was not declared or not produced") from None

    def pick(self, *names: str) -> dict[str, str]:
        """The ids of the named inputs that are present (lineage parents of an output)."""
        return {name: self.ids[name] for name in names if name in self.ids}

    @functools.cached_property
    def dataset(self) -> DatasetVersion:
        return self.catalog.dataset(self.id("dataset"))

    def dataset_frame(self) -> pd.DataFrame:
        return self.catalog.dataset_frame(self.id("dataset"))

    def split(self, name: str) -> pd.DataFrame:
        """One split's rows, read once per step."""
        if name not in self._frames:
            self._frames[name] = self.catalog.split_frame(self.id("splits"), name)
        return self._frames[name]

    @functools.cached_property
    def model(self) -> LoadedModel:
        return self.catalog.model(self.id("model"))

    @functools.cached_property
    def baseline(self) -> LoadedModel:
        return self.catalog.model(self.id("baseline"))

    @functools.cached_property
    def model_tests(self) -> ModelTestReport | None:
        """The training stage's model tests, when that optional input is present."""
        if "model_tests" not in self.ids:
            return None
        return self.catalog.model_tests(self.ids["model_tests"])

    @functools.cached_property
    def evaluation(self) -> SavedEvaluation:
        return self.catalog.evaluation(self.id("evaluation"))

    @functools.cached_property
    def blessing(self) -> Blessing:
        return self.catalog.blessing(self.id("blessing"))
