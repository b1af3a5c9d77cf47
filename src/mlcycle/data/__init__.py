"""The data stage: read a source, infer its contract, profile it, validate it.

Pure functions over pandas DataFrames and the records of :mod:`mlcycle.schema`
and :mod:`mlcycle.artifacts`; the pipeline stores what they return.

Example:
    >>> from mlcycle import data
    >>> df = data.read_source(spec.data.source, spec_dir)
    >>> schema = data.infer_schema(df, spec.problem, spec.data.features)
    >>> report = data.validate_frame(df, schema)
    >>> profile = data.compute_profile(df, schema)
    >>> key = data.fingerprint_source(spec.data.source, spec_dir), data.content_hash(df)

The lifecycle's stage functions: :func:`build_version` (landed rows → a
dataset version) and :func:`validate_version` (a version → its report); the
pipeline's catalog loads their inputs and stores what they return.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcycle.data.build import build_version
    from mlcycle.data.infer import infer_schema, parse_timestamp
    from mlcycle.data.profile import compute_profile, merge_profiles
    from mlcycle.data.sources import content_hash, fingerprint_source, read_source
    from mlcycle.data.validate import validate_frame, validate_version

# Each name is imported from its module on first use: reading a file (`mlcycle monitor
# drift -r FILE -c FILE`) then does not import the landing zone's SQLAlchemy and the rest.
_HOMES = {
    "build_version": "mlcycle.data.build",
    "infer_schema": "mlcycle.data.infer",
    "parse_timestamp": "mlcycle.data.infer",
    "compute_profile": "mlcycle.data.profile",
    "merge_profiles": "mlcycle.data.profile",
    "content_hash": "mlcycle.data.sources",
    "fingerprint_source": "mlcycle.data.sources",
    "read_source": "mlcycle.data.sources",
    "validate_frame": "mlcycle.data.validate",
    "validate_version": "mlcycle.data.validate",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'mlcycle.data' has no attribute {name!r}")


__all__ = [
    "build_version",
    "compute_profile",
    "content_hash",
    "fingerprint_source",
    "infer_schema",
    "merge_profiles",
    "parse_timestamp",
    "read_source",
    "validate_frame",
    "validate_version",
]
