"""What a model is monitored against, the checks a current sample must pass, and the
reference's calibrations kept on disk.

The reference is normally the bundle's reference sample (the training rows
kept at registration, :meth:`mlcycle.bundle.Bundle.reference`);
:meth:`Reference.with_dataset` swaps in any dataset version (:mod:`.datasets`)
while keeping the bundle's contract and outlier model. Its drift calibrations
(:mod:`.calibrate`) depend only on the reference rows, so :class:`CalibrationFile`
keeps them in a JSON file per reference and every later ``monitor run`` reuses
them.

Example:
    >>> ref = Reference.from_bundle(folder, version=3)
    >>> ref.label
    'bundle'
    >>> check_frame(window_rows, ref, "window 2013-08")   # raises BadInput when unfit
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from mlcycle.artifacts import BundleMeta, Profile
from mlcycle.bundle import Bundle
from mlcycle.errors import BadInput
from mlcycle.monitor import anomaly, calibrate
from mlcycle.monitor.calibrate import NullModel
from mlcycle.monitor.datasets import Version
from mlcycle.schema import Schema

#: Calibrations by (feature, test, window-size bucket), as :func:`drift_report` caches them.
NullCache = dict[tuple[str, str, int], NullModel]

#: How calibrations were computed; a file written another way is recomputed, not reused.
METHOD = (
    f"bootstrap-v2/{calibrate.RESAMPLES}/{calibrate.PRECISE_RESAMPLES}/{calibrate.SETTLED}/"
    f"{calibrate.MAX_CHUNK}/{calibrate.QUANTILE}"
)


@dataclass
class Reference:
    """What a model is monitored against: its bundle's contract, reference rows and models."""

    meta: BundleMeta
    schema: Schema
    frame: pd.DataFrame
    version: int | None = None
    predictions: pd.DataFrame | None = None
    outliers: anomaly.OutlierModel | None = None
    #: ``bundle`` for the bundle's reference rows, ``dataset:<id>`` for a dataset version.
    label: str = "bundle"
    #: The profile of every training row (the bundle's ``profile.json``; a dataset
    #: version's own profile after :meth:`with_dataset`); ``None`` for a bundle without one.
    profile: Profile | None = None
    #: The primary metric's holdout confidence interval (the bundle's evaluation.json),
    #: so a window's realized band counts the holdout's uncertainty as well as its own.
    holdout_interval: tuple[float, float] | None = None

    @classmethod
    def from_bundle(
        cls, folder: Path, version: int | None = None, predictions: pd.DataFrame | None = None
    ) -> Reference:
        """The bundle's meta, contract, reference sample, outlier model and profile.

        Example:
            >>> Reference.from_bundle(folder, version=3).meta.features
            ['month', 'carrier', 'distance']
        """
        bundle = Bundle(folder)
        meta, schema, frame = bundle.meta(), bundle.schema(), bundle.reference()
        missing = [f for f in meta.features if f not in frame.columns]
        if missing:
            raise BadInput(
                f"the reference of {meta.name} lacks feature(s) {', '.join(missing)}",
                "monitoring compares each feature with its training values",
                "re-register the model so its bundle holds a complete reference sample",
            )
        profile = bundle.profile() if bundle.profile_path.is_file() else None
        outliers = anomaly.OutlierModel.load(folder)
        interval = None
        if bundle.evaluation_path.is_file():
            evaluation = bundle.evaluation()
            interval = evaluation.intervals.get("candidate", {}).get(evaluation.primary_metric)
        return cls(meta, schema, frame, version, predictions, outliers, "bundle", profile, interval)

    def with_dataset(self, version: Version, predictions: pd.DataFrame | None = None) -> Reference:
        """This reference with a dataset version's rows in place of the bundle's.

        The contract and the outlier model stay the bundle's: they describe what
        the model accepts, whatever sample it is compared with. ``predictions``
        are the model's predictions on the version's rows (for prediction drift);
        without them prediction drift is skipped.

        Example:
            >>> ref.with_dataset(load_version(store, "latest")).label
            'dataset:692ef2a81c0d'
        """
        missing = [f for f in self.meta.features if f not in version.frame.columns]
        if missing:
            raise BadInput(
                f"dataset version {version.id[:12]} lacks feature(s) {', '.join(missing)} "
                f"of model {self.meta.name}",
                "a reference must hold every feature the model reads",
                "pick a version built with those columns (`mlcycle data versions`)",
            )
        if len(version.frame) == 0:
            raise BadInput(
                f"dataset version {version.id[:12]} has no rows",
                "a reference is the distribution windows are compared with",
                "pick a non-empty version",
            )
        # The target comes along when the version has it: target drift compares labels.
        keep = [*self.meta.features, *[self.meta.target] * (self.meta.target in version.frame)]
        frame = version.frame[list(dict.fromkeys(keep))].reset_index(drop=True)
        # "Did the reference see this value" is asked of the version's own profile (every
        # row of it); an old record without one falls back to the sample (profile None).
        return replace(
            self, frame=frame, predictions=predictions, label=version.label, profile=version.profile
        )

    @property
    def positive(self) -> str | None:
        return None if self.meta.positive_label is None else str(self.meta.positive_label)


def check_frame(frame: pd.DataFrame, reference: Reference, where: str) -> None:
    """Refuse a current sample with a feature missing or retyped, or with no rows.

    ``where`` names the sample in the message (a log file, a dataset version).

    Example:
        >>> check_frame(pd.DataFrame({"distance": ["far"]}), ref, "file x.parquet")
        Traceback (most recent call last):
        BadInput: column 'distance' in file x.parquet was retyped: object, ...
    """
    missing = [c for c in reference.meta.features if c not in frame.columns]
    if missing:
        raise BadInput(
            f"{where} lacks feature column(s) {', '.join(missing)}",
            f"model {reference.meta.name} is monitored on each feature it reads",
            "add the columns, or monitor data the model could have scored",
        )
    for name in reference.meta.features:
        try:
            kind = reference.schema.column(name).kind
        except KeyError:
            continue
        col = frame[name]
        if kind == "numeric" and not (pd.api.types.is_numeric_dtype(col) or col.isna().all()):
            raise BadInput(
                f"column '{name}' in {where} was retyped: {col.dtype}, the contract says numeric",
                "drift and anomaly checks compare values of the kind the model was trained on",
                f"write '{name}' as numbers, or leave {where} out of monitoring",
            )


@dataclass
class CalibrationFile:
    """Drift calibrations of one reference, kept as JSON so each is computed once.

    The file name carries the bundle folder (content-addressed) and the
    reference label, so a different reference never reads another's numbers.

    Example:
        >>> cal = CalibrationFile(home / "monitor" / "ab12.bundle.calibration.json")
        >>> cache = cal.load()          # {} the first time
        >>> cal.save(cache)             # after drift_report(..., null_models=cache)
    """

    path: Path

    @classmethod
    def for_reference(cls, folder: Path, bundle: str, reference: Reference) -> CalibrationFile:
        label = reference.label.replace(":", "-")
        return cls(folder / f"{bundle}.{label}.calibration.json")

    def load(self) -> NullCache:
        """The stored calibrations ({} when there is no file or it cannot be read)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if raw.get("method") != METHOD:
                return {}
            return {
                (e["feature"], e["test"], int(e["size"])): NullModel(
                    e["test"], float(e["scale"]), float(e["power"]), float(e["floor"])
                )
                for e in raw["calibrations"]
            }
        except (OSError, ValueError, KeyError, TypeError):
            # A missing or damaged cache only costs a recalibration.
            return {}

    def save(self, cache: NullCache) -> None:
        """Write atomically (temp file + rename)."""
        entries = [
            {"feature": f, "size": size, **null.to_dict()}
            for (f, _test, size), null in sorted(cache.items())
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"method": METHOD, "calibrations": entries}, indent=1), encoding="utf-8"
        )
        tmp.replace(self.path)


__all__ = ["CalibrationFile", "NullCache", "Reference", "check_frame"]
