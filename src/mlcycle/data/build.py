"""The rows of a new dataset version: the usable raw partitions, combined.

Append mode (a watermark is declared) unions every landed partition that is not
quarantined, in landing order; snapshot mode takes the newest snapshot alone. A
column whose type differs between partitions (a retyped column in one month)
is kept as text, so the version can still be stored and validation can say
what broke instead of the build failing.

:func:`build_version` is the stage function the pipeline calls: landed rows in,
a :class:`~mlcycle.artifacts.DatasetVersion` (frozen contract, profile, lineage
hashes) and its frame out. It takes the partitions and their rows as the
catalog loads them (:func:`raw_frame`), so it never touches the store itself.

Example:
    >>> parts, df = raw_frame(store, spec.data.source)
    >>> len(parts), len(df)
    (12, 336776)
    >>> record, frame = build_version(df, parts, problem=spec.problem, data=spec.data,
    ...                               base_dir=root, contract=None)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from mlcycle.artifacts import DatasetVersion
from mlcycle.data.infer import infer_schema
from mlcycle.data.landing import QUARANTINED, Partition, RawRoot, list_partitions
from mlcycle.data.profile import compute_profile
from mlcycle.data.sources import content_hash
from mlcycle.data.transform import apply_transforms, transforms_hash
from mlcycle.errors import BadInput
from mlcycle.schema import Schema, kind_of
from mlcycle.spec import Data, Problem, Source
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


def build_version(
    raw: pd.DataFrame,
    partitions: Sequence[Partition],
    *,
    problem: Problem,
    data: Data,
    base_dir: Path,
    contract: Schema | None,
) -> tuple[DatasetVersion, pd.DataFrame]:
    """The dataset version of ``raw`` (the rows of ``partitions``): transformed, typed,
    with its frozen contract and profile. ``contract`` is the hand-editable schema
    file when there is one; without it the inferred schema is the contract.

    Example:
        >>> record, frame = build_version(df, parts, problem=spec.problem, data=spec.data,
        ...                               base_dir=root, contract=Schema.from_yaml(path))
        >>> record.rows == len(frame)
        True
    """
    df = raw
    if data.transforms:
        df = storable(apply_transforms(df, data.transforms, base_dir))
    ts = problem.timestamp_column
    if ts and ts in df.columns and not pd.api.types.is_datetime64_any_dtype(df[ts]):
        try:
            df[ts] = pd.to_datetime(df[ts], utc=True)
        except (ValueError, TypeError) as exc:
            raise BadInput(
                f"timestamp column '{ts}' does not parse as dates",
                str(exc),
                "fix the data or problem.timestamp_column",
            ) from exc
    inferred = infer_schema(df, problem, data.features)
    schema = inferred if contract is None else contract_with_roles(contract, inferred)
    df = numbers_as_numbers(df, schema)
    code = transforms_hash(data.transforms, base_dir)
    record = DatasetVersion(
        rows=len(df),
        columns=[str(c) for c in df.columns],
        source=data.source.shown,
        source_fingerprint=lineage_hash(partitions, code, base_dir),
        content_hash=content_hash(df),
        schema=schema,
        profile=compute_profile(df, schema),
        source_name=data.source.name,
        partitions=[p.content_hash for p in partitions],
        transforms_hash=code,
    )
    return record, df


def numbers_as_numbers(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """``df`` with each text column the contract calls numeric converted, when every
    value parses (a column with text that does not stays text: validation names it).

    Example:
        >>> schema = Schema(columns=[ColumnSchema(name="x", kind="numeric")])
        >>> numbers_as_numbers(pd.DataFrame({"x": ["1", "2.5", None]}), schema)["x"].tolist()
        [1.0, 2.5, nan]
    """
    out = df
    for col in schema.columns:
        if col.kind != "numeric" or col.name not in df.columns:
            continue
        column = df[col.name]
        if kind_of(column) != "string":
            continue
        try:
            parsed = pd.to_numeric(column, errors="coerce")
        except (TypeError, ValueError):
            continue
        if parsed.isna().sum() != column.isna().sum():
            continue
        if out is df:
            out = df.copy()
        out[col.name] = parsed
    return out


def contract_with_roles(contract: Schema, inferred: Schema) -> Schema:
    """The hand-editable contract, with roles taken from the spec (via fresh inference).

    The spec says which columns are features; the contract says what each
    column must look like. Columns only in the data stay out of the contract
    (validation reports them as extra). Inference may call a column "ignored"
    only because its values changed kind (a retyped numeric column looks like
    free text); the contract's kind decides then, so the change is reported
    instead of the column silently dropping out of the model.

    Example:
        >>> contract_with_roles(Schema.from_yaml("schema.yaml"), inferred).features
    """
    inferred_by_name = {c.name: c for c in inferred.columns}
    columns = []
    for col in contract.columns:
        fresh = inferred_by_name.get(col.name)
        role = col.role if fresh is None else fresh.role
        retyped = fresh is not None and fresh.kind == "string" and col.kind != "string"
        if retyped and fresh is not None and fresh.role == "ignored" and col.role != "ignored":
            role = col.role
        columns.append(col.model_copy(update={"role": role}))
    return Schema(columns=columns)
