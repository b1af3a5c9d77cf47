"""Finding logged predictions by request id (and row id) in the prediction log.

Shared by ``mlcycle lineage prediction:REQ[/ROW]`` and the dashboard's
``/lineage/prediction:REQ[/ROW]``: both start from the logged rows, then follow
each row's model version to its bundle, gate, data version and commit.

Example:
    >>> rows = find_logged_rows(".mlcycle/predictions", "3f2a9c0e4b1d")
    >>> rows[["model", "model_version", "prediction"]].iloc[0].tolist()
    ['flights', 2, 'True']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlcycle.errors import BadInput, NotFound

if TYPE_CHECKING:
    import pandas as pd


def find_logged_rows(root: str, request_id: str, row_id: str | None = None) -> pd.DataFrame:
    """The rows of the prediction log at ``root`` with this request id (and row id).

    Every model's files are searched, newest day first; each file is read with
    a filter on ``request_id``, so Parquet statistics skip most row groups.
    Raises :class:`NotFound` (exit 2) when no row matches.

    Example:
        >>> find_logged_rows(".mlcycle/predictions", "3f2a9c0e4b1d")[["model", "prediction"]]
    """
    import pandas as pd
    import pyarrow.parquet as pq

    from mlcycle.predlog import list_files
    from mlcycle.store.remote import filesystem, storage_error

    models = logged_models(root)
    frames = []
    # One filesystem for the whole log: list_files gives paths without the URL's scheme.
    fs, _ = filesystem(root)
    try:
        for model in models:
            for path in reversed(list_files(root, model)):
                if "request_id" not in pq.read_schema(path, filesystem=fs).names:
                    continue
                found = pq.read_table(
                    path, filesystem=fs, filters=[("request_id", "==", request_id)]
                )
                if found.num_rows:
                    frames.append(found.to_pandas())
    except OSError as exc:  # a remote log that stopped answering
        raise storage_error(root, exc, "read the prediction log at", fs) from None
    if not frames:
        where = f"the log holds models {', '.join(models)}" if models else "the log is empty"
        raise NotFound(
            f"no logged prediction has request id {request_id!r}",
            f"searched {root}: {where}",
            "use the request_id a response carried (or the X-Request-ID you sent), or the "
            "batch job's id; set MLCYCLE_PREDICTIONS_URL if the log lives elsewhere",
        )
    rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    rows = rows.sort_values("ts", kind="stable").reset_index(drop=True)
    if row_id is None:
        return rows
    picked = rows[rows["row_id"].astype("string") == row_id].reset_index(drop=True)
    if picked.empty:
        ids = ", ".join(str(v) for v in rows["row_id"].dropna().head(5))
        raise NotFound(
            f"request {request_id!r} has no row with row id {row_id!r}",
            f"its {len(rows):,} logged row(s) have row ids such as: {ids or 'none (null)'}",
            f"use one of them, or prediction:{request_id} for every row of the request",
        )
    return picked


def logged_models(root: str) -> list[str]:
    """The model folders of the prediction log (empty when there is no log yet).

    A folder whose name is not a model name (``check_model_name``) is not the log's.

    Example:
        >>> logged_models(".mlcycle/predictions")
        ['flights']
    """
    from mlcycle.bundle import check_model_name
    from mlcycle.store.remote import filesystem, storage_error

    fs, base = filesystem(root)  # a missing backend (s3fs) is a clear BadInput
    base = str(base).rstrip("/")
    try:
        # Servers on other machines add model folders: a client's cached listing is stale.
        fs.invalidate_cache()
        if not fs.isdir(base):
            return []
        listed = fs.ls(base, detail=False)
    except Exception as exc:  # each backend raises its own kinds: translated by name
        raise storage_error(root, exc, "list the prediction log at", fs) from None
    models = []
    for path in listed:
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        try:
            check_model_name(name)
        except BadInput:
            continue
        if fs.isdir(f"{base}/{name}"):
            models.append(name)
    return sorted(models)
