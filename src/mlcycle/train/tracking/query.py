"""Reading runs back: search with a small filter language, one run, a metric's history.

Filters are clauses joined by ``and``: ``metrics.auc > 0.9``,
``params.family = 'hgb'``, ``tags.stage != 'debug'``, or a run attribute
(``status``, ``name``, ``experiment``, ``parent_id``, ``seed``, ``dataset_id``,
``spec_hash``, ``git_sha``, ``duration_s``, ``host``). A metric compares its
latest value (highest step).

Example:
    >>> search_runs(engine, experiment="flights", filter="metrics.roc_auc > 0.7", limit=5)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlcycle.errors import BadInput, NotFound
from mlcycle.store import tables as t
from mlcycle.train.tracking.blocks import decode, latest_value

ATTRIBUTES = (
    "status",
    "name",
    "experiment",
    "parent_id",
    "seed",
    "dataset_id",
    "spec_hash",
    "git_sha",
    "duration_s",
    "host",
    "start_time",
)
_CLAUSE = re.compile(
    r"^\s*(?:(metrics|params|tags|attributes)\.)?([\w.\-/:]+|`[^`]+`)\s*"
    r"(=|==|!=|<=|>=|<|>|like)\s*(.+?)\s*$",
    re.IGNORECASE,
)
_OPS = {
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "like": lambda a, b: a.like(b),
}


@dataclass
class RunView:
    """A run as read back: its row, params, latest metrics, tags and files."""

    info: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.info["id"])

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info,
            "params": self.params,
            "metrics": self.metrics,
            "tags": self.tags,
            "files": self.files,
        }


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return (
            float(text) if any(ch in text for ch in ".eE") or text in ("inf", "-inf") else int(text)
        )
    except ValueError:
        return text


def _where(filter: str) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    for clause in re.split(r"\s+and\s+", filter.strip(), flags=re.IGNORECASE):
        if not clause:
            continue
        match = _CLAUSE.match(clause)
        if match is None:
            raise BadInput(
                f"cannot read the filter clause {clause!r}",
                "a clause is KIND.KEY OP VALUE, clauses joined by 'and'",
                "e.g. \"metrics.roc_auc > 0.8 and params.family = 'hgb'\"",
            )
        kind, key, op, raw = match.groups()
        key = key.strip("`")
        op = op.lower()
        value = _literal(raw)
        compare = _OPS[op]
        if kind is None or kind.lower() == "attributes":
            if key not in ATTRIBUTES:
                raise BadInput(
                    f"unknown run attribute '{key}' in the filter",
                    "without a metrics./params./tags. prefix a key names a run attribute",
                    f"use one of {', '.join(ATTRIBUTES)} or prefix the key",
                )
            conditions.append(compare(t.runs.c[key], value))
        elif kind.lower() == "metrics":
            if not isinstance(value, (int, float)):
                raise BadInput(
                    f"metric '{key}' compared with {raw!r}",
                    "metrics are numbers",
                    "compare with a number, e.g. metrics.auc > 0.8",
                )
            m = t.run_latest_metrics
            conditions.append(
                sa.exists().where(
                    m.c.run_id == t.runs.c.id, m.c.key == key, compare(m.c.value, value)
                )
            )
        else:
            table = t.run_params if kind.lower() == "params" else t.run_tags
            if op in ("<", "<=", ">", ">="):
                raise BadInput(
                    f"{kind}.{key} {op} {raw}: {kind} are text",
                    "ordering text gives surprising answers ('10' < '9')",
                    "use = , != or like; log numbers as metrics to compare them",
                )
            conditions.append(
                sa.exists().where(
                    table.c.run_id == t.runs.c.id,
                    table.c.key == key,
                    compare(table.c.value, str(value)),
                )
            )
    return conditions


def search_runs(
    engine: Engine,
    *,
    experiment: str | None = None,
    filter: str | None = None,
    order_by: str = "start_time desc",
    limit: int = 100,
    details: bool = True,
) -> list[RunView]:
    """Runs matching ``filter``, newest first by default; with params, metrics and tags."""
    query = sa.select(t.runs)
    if experiment is not None:
        query = query.where(t.runs.c.experiment == experiment)
    if filter:
        query = query.where(*_where(filter))
    query = query.order_by(*_order(order_by)).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
        views = {r["id"]: RunView(r) for r in rows}
        if details and views:
            _fill(conn, views)
    return list(views.values())


def _order(order_by: str) -> list[Any]:
    parts = order_by.split()
    key = parts[0]
    descending = len(parts) > 1 and parts[1].lower() == "desc"
    if key.startswith("metrics."):
        m = t.run_latest_metrics
        latest = (
            sa.select(m.c.value)
            .where(m.c.run_id == t.runs.c.id, m.c.key == key.removeprefix("metrics."))
            .scalar_subquery()
        )
        column: Any = latest
    elif key in ATTRIBUTES:
        column = t.runs.c[key]
    else:
        raise BadInput(
            f"cannot order runs by '{key}'",
            "",
            f"use metrics.NAME or one of {', '.join(ATTRIBUTES)}, then asc or desc",
        )
    return [column.desc() if descending else column.asc(), t.runs.c.id]


def _fill(conn: sa.Connection, views: dict[str, RunView]) -> None:
    ids = list(views)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for run_id, key, value in conn.execute(
            sa.select(t.run_params.c.run_id, t.run_params.c.key, t.run_params.c.value).where(
                t.run_params.c.run_id.in_(chunk)
            )
        ):
            views[run_id].params[key] = value
        for run_id, key, value in conn.execute(
            sa.select(t.run_tags.c.run_id, t.run_tags.c.key, t.run_tags.c.value).where(
                t.run_tags.c.run_id.in_(chunk)
            )
        ):
            views[run_id].tags[key] = value
        m = t.run_latest_metrics
        for run_id, key, value in conn.execute(
            sa.select(m.c.run_id, m.c.key, m.c.value).where(m.c.run_id.in_(chunk))
        ):
            views[run_id].metrics[key] = latest_value(value)
        for run_id, name, artifact_id in conn.execute(
            sa.select(t.run_files.c.run_id, t.run_files.c.name, t.run_files.c.artifact_id).where(
                t.run_files.c.run_id.in_(chunk)
            )
        ):
            views[run_id].files[name] = artifact_id


def resolve_run(engine: Engine, prefix: str) -> str:
    """The full id of the run whose id (or unique name) starts with ``prefix``."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.runs.c.id).where(t.runs.c.id.startswith(prefix, autoescape=True)).limit(2)
        ).all()
        if not rows:
            rows = conn.execute(
                sa.select(t.runs.c.id)
                .where(t.runs.c.name == prefix)
                .order_by(t.runs.c.start_time.desc())
                .limit(1)
            ).all()
    if not rows:
        raise NotFound(
            f"no run '{prefix}'",
            "no run id starts with it and no run has that name",
            "list runs with `mlcycle runs list`",
        )
    if len(rows) > 1:
        raise BadInput(f"run id '{prefix}' is ambiguous", "", "give more characters")
    return str(rows[0][0])


def get_run(engine: Engine, run_id: str) -> RunView:
    """One run with its params, latest metrics, tags and files (id prefix or name)."""
    full = resolve_run(engine, run_id)
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.runs).where(t.runs.c.id == full)).mappings().one()
        views = {full: RunView(dict(row))}
        _fill(conn, views)
    return views[full]


def metric_history(engine: Engine, run_id: str, key: str) -> list[tuple[int, float, float]]:
    """(step, value, timestamp) of every point of a metric, in step order."""
    b = t.run_metric_blocks
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(b.c.steps, b.c.vals, b.c.times)
            .where(b.c.run_id == run_id, b.c.key == key)
            .order_by(b.c.first_step)
        ).all()
    return decode(rows)
