"""The dataset versions the `mlcycle data …` commands name: listed, resolved, read.

Example:
    >>> artifact_id = resolve_dataset(project, None)   # the newest version
    >>> dataset_record(project, artifact_id).rows
    160678
"""

from __future__ import annotations

from typing import Any

import typer

from mlcycle.errors import BadInput

VersionArg = typer.Argument(
    None, help="Dataset version id (or a prefix of ≥ 6 characters); default: the newest."
)


def dataset_versions(project: Any) -> list[dict[str, Any]]:
    """Every dataset version, newest first, with its validation status (the CLI's JSON shape).

    Example:
        >>> [v["status"] for v in dataset_versions(project)]
        ['valid', 'invalid']
    """
    from mlcycle.store.listings import dataset_versions as listed

    shown = ("id", "created_at", "rows", "columns", "partitions", "source", "status", "reason")
    return [{key: getattr(v, key) for key in shown} for v in listed(project.store)]


def resolve_dataset(project: Any, version: str | None) -> str:
    """The full id of dataset ``version`` (an id or a prefix); the newest when ``None``.

    Example:
        >>> resolve_dataset(project, "3f2a9c")
        '3f2a9c81d0…'
    """
    if version:
        return str(project.store.resolve(version, kind="dataset"))
    found = dataset_versions(project)
    if not found:
        raise BadInput(
            "no dataset version yet", "", "run `mlcycle data ingest` or `mlcycle run` first"
        )
    return str(found[0]["id"])


def dataset_record(project: Any, artifact_id: str) -> Any:
    """The :class:`~mlcycle.artifacts.DatasetVersion` record of ``artifact_id``.

    Example:
        >>> dataset_record(project, artifact_id).profile.rows
        160678
    """
    return project.catalog.dataset(artifact_id)
