"""The rows of a new dataset version: the usable raw partitions, combined.

Append mode (a watermark is declared) unions every landed partition that is not
quarantined, in landing order; snapshot mode takes the newest snapshot alone. A
column whose type differs between partitions (a retyped column in one month)
is kept as text, so the version can still be stored and validation can say
what broke instead of the build failing.

Example:
    >>> parts, df = raw_frame(store, spec.data.source)
    >>> len(parts), len(df)
    (12, 336776)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from mlcycle.data.landing import QUARANTINED, Partition, RawRoot, list_partitions
from mlcycle.errors import BadInput
from mlcycle.spec import Source
from mlcycle.store import Store


def usable_partitions(store: Store, source: Source) -> list[Partition]:
    """The partitions a new version of ``source`` is built from (see module docs)."""
    every = list_partitions(store, source.name)
    if not every:
        raise BadInput(
            f"source '{source.name}' has nothing ingested yet",
            "a dataset version is built from landed raw partitions",
            "run `mlcycle data ingest` (or `mlcycle run`)",
        )
    if source.watermark is None:
        newest = every[-1]
        if newest.status == QUARANTINED:
            raise BadInput(
                f"the newest snapshot of source '{source.name}' is quarantined",
                f"the version built from it ({newest.path}) failed validation",
                "fix the source data (a changed file is ingested as a new snapshot), or edit "
                "the contract if the change is intended",
            )
        return [newest]
    usable = [p for p in every if p.status != QUARANTINED]
    if not usable:
        raise BadInput(
            f"every partition of source '{source.name}' is quarantined",
            "each failed validation; none may be trained on",
            "fix the source and ingest again (see `mlcycle data versions`)",
        )
    return usable


def raw_frame(store: Store, source: Source) -> tuple[list[Partition], pd.DataFrame]:
    """The usable partitions and their rows as one frame (the table ``raw`` of transforms)."""
    parts = usable_partitions(store, source)
    root = RawRoot(store)
    frames = [root.read(p) for p in parts]
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return parts, storable(df)


def storable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with any column of mixed Python types turned into text (nulls kept).

    Example:
        >>> storable(pd.DataFrame({"x": [1, "a", None]}))["x"].tolist()
        ['1', 'a', nan]
    """
    out = df
    for name in df.columns:
        column = df[name]
        if column.dtype != object:
            continue
        try:
            pa.array(column, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if out is df:
                out = df.copy()
            out[name] = column.astype("str").where(column.notna(), None)
    return out


def lineage_hash(partitions: Sequence[Partition], transforms_hash: str, base_dir: Path) -> str:
    """What a version came from: partition contents (in order) and the transforms."""
    del base_dir  # the identity must not depend on where the project lives
    payload = {"partitions": [p.content_hash for p in partitions], "transforms": transforms_hash}
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()
