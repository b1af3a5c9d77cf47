"""Ground truth arriving late and in pieces, joined to predictions by id.

:func:`ingest_labels` stores labels keyed by the id the prediction log
carries in ``row_id``. Nothing is joined silently: ids the log has never seen
are reported and left out, ids repeated within the file are reported and left
out, and an id already labelled with a different value is reported as a
conflict and keeps its first label (``replace=True`` overwrites).

Example:
    >>> ingest_labels(store, "flights", frame, id_column="flight_id", label_column="delayed",
    ...               known_ids=log_ids)
    {'rows': 1200, 'stored': 1180, 'unknown_ids': 12, 'duplicates': 8, ...}
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from mlcycle.errors import BadInput
from mlcycle.store import Store, now
from mlcycle.store import tables as t

_CHUNK = 5_000


def read_labels(store: Store, model: str) -> pd.DataFrame:
    """Every stored label of ``model``: columns ``row_id``, ``label`` (both text)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.monitor_labels.c.row_id, t.monitor_labels.c.label).where(
                t.monitor_labels.c.model == model
            )
        ).all()
    return pd.DataFrame(rows, columns=["row_id", "label"], dtype=object)


def ingest_labels(
    store: Store,
    model: str,
    frame: pd.DataFrame,
    *,
    id_column: str,
    label_column: str,
    known_ids: set[str],
    replace: bool = False,
) -> dict[str, Any]:
    """Store the labels of ids the prediction log knows; report everything else.

    Returns counts (``rows``, ``stored``, ``unchanged``, ``unknown_ids``,
    ``duplicates``, ``conflicts``, ``missing_label``) and up to 10 examples of
    each problem. Raises :class:`BadInput` when a column is missing or the
    file is empty.
    """
    for col in (id_column, label_column):
        if col not in frame.columns:
            raise BadInput(
                f"the labels file has no column '{col}'",
                f"it has: {', '.join(map(str, frame.columns[:20]))}",
                "pass --id-column / --label-column naming its columns",
            )
    if len(frame) == 0:
        raise BadInput("the labels file has no rows", "", "pass a file with labels")
    ids = frame[id_column].astype("object")
    ids = ids.where(ids.isna(), ids.astype(str))
    labels = frame[label_column].astype("object")
    labels = labels.where(labels.isna(), labels.astype(str))
    data = pd.DataFrame({"row_id": ids, "label": labels})
    report: dict[str, Any] = {"rows": len(data)}
    missing = data["row_id"].isna() | data["label"].isna()
    report["missing_label"] = int(missing.sum())
    data = data[~missing]
    dup = data["row_id"].duplicated(keep=False)
    report["duplicates"] = int(dup.sum())
    report["duplicate_examples"] = sorted(set(data.loc[dup, "row_id"]))[:10]
    data = data[~dup]
    unknown = ~data["row_id"].isin(known_ids)
    report["unknown_ids"] = int(unknown.sum())
    report["unknown_examples"] = data.loc[unknown, "row_id"].head(10).tolist()
    data = data[~unknown]
    existing = read_labels(store, model).set_index("row_id")["label"]
    before = data["row_id"].map(existing)
    same = before.notna() & (before == data["label"])
    conflict = before.notna() & (before != data["label"])
    report["unchanged"] = int(same.sum())
    report["conflicts"] = int(conflict.sum())
    report["conflict_examples"] = data.loc[conflict, "row_id"].head(10).tolist()
    fresh = data[before.isna()]
    stamp = now()
    with store.engine.begin() as conn:
        records = [
            {"model": model, "row_id": r, "label": lab, "ingested_at": stamp}
            for r, lab in zip(fresh["row_id"], fresh["label"], strict=True)
        ]
        for i in range(0, len(records), _CHUNK):
            conn.execute(t.monitor_labels.insert(), records[i : i + _CHUNK])
        if replace and conflict.any():
            for r, lab in zip(
                data.loc[conflict, "row_id"], data.loc[conflict, "label"], strict=True
            ):
                conn.execute(
                    t.monitor_labels.update()
                    .where((t.monitor_labels.c.model == model) & (t.monitor_labels.c.row_id == r))
                    .values(label=lab, ingested_at=stamp)
                )
    report["stored"] = len(fresh) + (int(conflict.sum()) if replace else 0)
    return report
