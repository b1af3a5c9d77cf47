"""Proposing a spec for data a person brings: ``mlcycle init DIR --data FILE --target COLUMN``.

:func:`propose` looks at a frame and its target column and decides, each time
with a reason a person can check: the task (binary, multiclass, regression),
the positive label, an id column, a timestamp column (then a time split) or an
entity column (then a group split), the primary metric, and the columns a
person must look at: constant, all-null, id-like, very high cardinality, dates
the model cannot use as they are, and leakage suspects (a name that means
"after the outcome", or a column that alone predicts the target on held-out
rows almost perfectly: :mod:`mlcycle.data.scaffold_leakage`). Its answer is a
:class:`~mlcycle.data.scaffold_proposal.Proposal`, which
:func:`~mlcycle.data.scaffold_render.render_spec` writes as a commented
``mlcycle.yaml``. :func:`read_sample` reads a source the way ingest does.

It lives in the data stage because it is about data (it reuses the stage's
readers and its numeric-text rule) and needs nothing but the spec below it;
the CLI command (``cli/init.py``) only reads, proposes and writes.

Example:
    >>> df = pd.DataFrame({"x": range(300), "y": ["a", "b", "b"] * 100})
    >>> p = propose(df, "y")
    >>> p.task, p.positive_label, p.metric
    ('binary', 'a', 'roc_auc')
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from mlcycle.data.infer import mostly_numeric
from mlcycle.data.scaffold_leakage import leakage_by_name, leakage_by_purity
from mlcycle.data.scaffold_proposal import ColumnNote, Proposal
from mlcycle.data.sources import read_source
from mlcycle.errors import BadInput
from mlcycle.spec import Source, Task

__all__ = ["propose", "read_sample"]

MAX_CLASSES = 50  # a text target with more distinct values is not a class label
MAX_INT_CLASSES = 10  # integer targets with at most this many values are classes
RARE_POSITIVE = 0.10  # below this share of positives, pr_auc replaces roc_auc
HIGH_CARDINALITY = 200  # the spec's default data.features.max_categories
MIN_TIMESTAMPS = 20  # distinct instants a time split needs to make sense

_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^id[_\W]", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z](Id|ID)$")  # customerId, orderID
_ENTITY_NAME = re.compile(
    r"(customer|user|client|account|patient|member|device|player|driver|store|shop|"
    r"merchant|household|subject|session|company|employee|vendor|supplier|machine|sensor)",
    re.IGNORECASE,
)
_TIME_NAME = re.compile(r"(time|date|_ts$|^ts$|timestamp|created|updated|day|_at$)", re.I)
_DATE_TEXT = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})([ T]\d|\s*$)")


# --- reading ------------------------------------------------------------------------


def read_sample(source: Source, base_dir: Path, max_rows: int = 1_000_000) -> pd.DataFrame:
    """The rows :func:`propose` looks at: all of a file source, the first ``max_rows`` of SQL.

    Files are read whole with the ingest reader (``mlcycle run`` reads them whole
    too, so they fit in memory, and every error names the file); a query may be
    a whole warehouse table, so only its first ``max_rows`` rows are fetched.

    Example:
        >>> read_sample(Source(path="data/train.csv"), Path(".")).shape
        (2000, 9)
    """
    if source.sql is None:
        return read_source(source, base_dir)
    from mlcycle.data.sqlsource import read_sql_chunks

    chunks = read_sql_chunks(source, base_dir, None, max_rows)
    try:
        first = next(chunks, None)
    finally:
        # Closing the generator closes the connection without fetching the rest.
        getattr(chunks, "close", lambda: None)()
    if first is None or len(first) == 0:
        raise BadInput(
            f"the query of '{source.url}' returned no rows",
            "init infers the spec from the data, so it needs some",
            "check --query (run it in your database client first)",
        )
    return first


# --- proposing ------------------------------------------------------------------------


def propose(frame: pd.DataFrame, target: str, *, seed: int = 0) -> Proposal:
    """Infer a spec for predicting ``target`` from the other columns of ``frame``.

    Cheap checks (uniqueness, nulls, constants) see every row; the leakage purity
    check sees a seeded sample of at most :data:`~mlcycle.data.scaffold_leakage.SAMPLE_ROWS` rows.

    Example:
        >>> p = propose(pd.DataFrame({"x": [1.0, 2.5] * 200, "y": [0, 1] * 200}), "y")
        >>> (p.task, p.positive_label, p.split)
        ('binary', 1, 'stratified')
    """
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        dups = sorted({c for c in columns if columns.count(c) > 1})
        raise BadInput(
            f"column name(s) {dups} appear more than once in the data",
            "every column needs a unique name",
            "rename the duplicated columns in the source",
        )
    if target not in columns:
        shown = ", ".join(columns[:30])
        raise BadInput(
            f"target column '{target}' not found in the data",
            f"the data has columns: {shown}",
            "pass --target with one of the columns above",
        )
    frame = frame.copy(deep=False)
    frame.columns = columns
    y = frame[target]
    labelled = y.notna()
    if not labelled.any():
        raise BadInput(
            f"target column '{target}' is entirely null",
            "a model learns from rows whose target is known",
            "pass --target with the column that holds the outcome",
        )
    task, task_why = _infer_task(y[labelled], target)
    metric, metric_why = _pick_metric(task, y[labelled])
    proposal = Proposal(
        target=target,
        task=task,
        task_why=task_why,
        metric=metric,
        metric_why=metric_why,
        rows=len(frame),
        null_targets=int((~labelled).sum()),
    )
    if task == "binary":
        proposal.positive_label, proposal.positive_why = _positive_label(y[labelled])
    elif task == "multiclass":
        counts = y[labelled].value_counts()
        rare = [str(v) for v, n in counts.items() if n < 20]
        if rare:
            proposal.warnings.append(
                f"class(es) {', '.join(rare[:5])} have fewer than 20 rows: the holdout metrics "
                "for them will be noisy; gather more rows or merge rare classes"
            )
    _look_at_columns(frame, proposal)
    _choose_split(frame, proposal)
    leakage_by_purity(frame[labelled], proposal, seed)
    return proposal


def _infer_task(y: pd.Series, target: str) -> tuple[Task, str]:
    """The task from the labelled target values, and why."""
    distinct = int(y.nunique())
    shown = _value_counts(y)
    if distinct < 2:
        raise BadInput(
            f"target column '{target}' has one value ({shown})",
            "a model needs at least two classes or a varying number to learn from",
            "check the data holds every outcome, or pass another --target",
        )
    if pd.api.types.is_bool_dtype(y.dtype) or distinct == 2:
        return "binary", f"the target '{target}' has two values ({shown})"
    if not pd.api.types.is_numeric_dtype(y.dtype):
        if mostly_numeric(y):
            return "regression", f"the target '{target}' holds numbers ({distinct} values)"
        if distinct > MAX_CLASSES:
            raise BadInput(
                f"target column '{target}' holds text with {distinct} distinct values",
                f"more than {MAX_CLASSES} classes looks like free text or an id, not a label",
                "pass the column that holds the outcome, or group its values into classes first",
            )
        return "multiclass", f"the target '{target}' has {distinct} text values ({shown})"
    values = y.astype("float64")
    integral = bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    if integral and distinct <= MAX_INT_CLASSES:
        return "multiclass", (
            f"the target '{target}' has {distinct} whole-number values ({shown}), read as "
            "class codes; if they are counts or ratings where size matters, use regression"
        )
    kind = "whole numbers" if integral else "numbers"
    return "regression", f"the target '{target}' holds {kind} with {distinct} distinct values"


def _positive_label(y: pd.Series) -> tuple[str | int | bool, str]:
    """The minority class (ties: the 'true-looking' one), and why."""
    counts = y.value_counts()
    truthy = {"1", "true", "yes", "y", "t", "positive", "pos"}
    order = sorted(counts.items(), key=lambda kv: (kv[1], str(kv[0]).lower() not in truthy))
    label, n = order[0]
    share = n / len(y)
    value = _plain(label)
    other = _plain(order[1][0])
    why = (
        f"the minority class ({n:,} of {len(y):,} labelled rows, {share:.1%}): the rarer "
        f"outcome is usually the one acted on, and precision, recall and pr_auc are about it; "
        f"set {json.dumps(other, default=str)} if that is the class you care about"
    )
    if counts.iloc[0] == counts.iloc[-1]:
        why = (
            f"both classes have {n:,} rows; {json.dumps(value, default=str)} looks like "
            "'yes'/'true' (or sorts first); change it if the other class is the one you act on"
        )
    return value, why


def _pick_metric(task: Task, y: pd.Series) -> tuple[str, str]:
    """The primary metric for the task and the target's distribution, and why."""
    if task == "binary":
        share = float(y.value_counts(normalize=True).min())
        if share < RARE_POSITIVE:
            return "pr_auc", (
                f"the positive class is rare ({share:.1%}); ROC-AUC stays high on rare "
                "positives even when most alerts are false, PR-AUC (average precision) "
                "measures how well the rare class is ranked"
            )
        return "roc_auc", (
            f"the classes are not rare ({share:.1%} minority): ROC-AUC judges the ranking "
            "independent of any threshold; use pr_auc if false alarms are what costs"
        )
    if task == "multiclass":
        counts = y.value_counts()
        if counts.iloc[-1] < 0.5 * counts.iloc[0]:
            return "f1_macro", (
                f"the classes are unbalanced ({_value_counts(y)}): macro F1 weighs every "
                "class equally, where accuracy would hide a class the model never predicts"
            )
        return "log_loss", (
            "the classes are balanced: log loss scores the predicted probabilities, not "
            "only the most likely class; use accuracy or f1_macro for a simpler number"
        )
    values = y.astype("float64") if pd.api.types.is_numeric_dtype(y.dtype) else None
    skew = float(cast(float, values.skew())) if values is not None and len(values) > 2 else 0.0
    if abs(skew) > 2:
        return "mae", (
            f"the target is skewed (skewness {skew:.1f}): MAE is not dominated by the few "
            "very large values the way RMSE is"
        )
    return "rmse", "the target is not heavily skewed: RMSE, in the target's own units"


# --- columns ------------------------------------------------------------------------


def _look_at_columns(frame: pd.DataFrame, p: Proposal) -> None:
    """Notes for every column that is empty, constant, an id, free text, a date or named
    like a leak; pick the id, timestamp and entity columns among them."""
    rows = len(frame)
    id_candidates: list[str] = []
    dates: dict[str, int] = {}
    for name in frame.columns:
        if name == p.target:
            continue
        series = frame[name]
        present = series.dropna()
        if present.empty:
            p.notes.append(ColumnNote(name, "all_null", f"all {rows:,} values are missing"))
            continue
        distinct = int(present.nunique())
        if distinct == 1:
            shown = json.dumps(_plain(present.iloc[0]), default=str)
            p.notes.append(ColumnNote(name, "constant", f"only the value {shown}"))
            continue
        if _is_date(series):
            dates[name] = distinct
            continue
        if _unique_key(series, distinct, rows):
            id_candidates.append(name)
            continue
        text = not pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype
        )
        if text and distinct > HIGH_CARDINALITY and not mostly_numeric(series):
            if _ENTITY_NAME.search(name) and p.group_column is None and distinct <= rows / 2:
                p.group_column = name  # an entity: a candidate for a group split
            p.notes.append(
                ColumnNote(
                    name,
                    "high_cardinality",
                    f"text with {distinct:,} distinct values (free text or codes); the model "
                    "uses text columns with at most 200 values (data.features.max_categories)",
                )
            )
        elif _ENTITY_NAME.search(name) and _id_named(name) and p.group_column is None:
            p.group_column = name if 20 <= distinct <= rows / 2 else None
        leakage_by_name(name, p)
    _choose_id(id_candidates, p)
    _choose_timestamp(frame, dates, p)
    if p.group_column is not None and not any(
        n.column == p.group_column and n.exclude for n in p.notes
    ):
        p.notes.append(
            ColumnNote(
                p.group_column,
                "id_like",
                "an entity id (many rows each): a model that learns single entities does "
                "not carry over to new ones",
            )
        )


def _unique_key(series: pd.Series, distinct: int, rows: int) -> bool:
    """Unique, never null, and not a float measurement: a row key."""
    if distinct != rows or series.isna().any():
        return False
    return not pd.api.types.is_float_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )


def _choose_id(candidates: list[str], p: Proposal) -> None:
    """The id column: a unique key named like an id (else the first unique key)."""
    named = [c for c in candidates if _id_named(c)]
    pool = named or candidates
    chosen = pool[0] if pool else None
    if chosen is not None:
        p.id_column = chosen
        how = "named like an id" if chosen in named else "the first column that is"
        p.id_why = (
            f"unique and never null, {how}: kept to join predictions to labels later, "
            "never a feature (a row's identity predicts nothing about new rows)"
        )
    for name in candidates:
        if name != chosen:
            p.notes.append(
                ColumnNote(
                    name,
                    "id_like",
                    "unique in every row: an identifier or free text, not a feature",
                )
            )


def _choose_timestamp(frame: pd.DataFrame, dates: dict[str, int], p: Proposal) -> None:
    """The timestamp: the date column named like one with the most instants; other
    date columns are noted (the model does not use raw dates)."""
    usable = {n: d for n, d in dates.items() if d >= MIN_TIMESTAMPS}
    ranked = sorted(usable, key=lambda n: (not _TIME_NAME.search(n), -usable[n]))
    if ranked:
        chosen = ranked[0]
        p.timestamp_column = chosen
        share = float(frame[chosen].notna().mean())
        p.timestamp_why = (
            f"dates with {usable[chosen]:,} distinct instants ({share:.0%} of rows set): the "
            "model is judged on rows later than those it learned from, as in production"
        )
        if share < 1:
            p.warnings.append(
                f"timestamp column '{chosen}' is missing in {1 - share:.1%} of rows; such rows "
                "sort first and land in the training split"
            )
    for name in dates:
        if name != p.timestamp_column:
            p.notes.append(
                ColumnNote(
                    name,
                    "date",
                    "dates or times: the model does not use raw dates; derive parts that "
                    "generalise (month, weekday, age in days) in data.transforms if useful",
                )
            )
            leakage_by_name(name, p)


def _choose_split(frame: pd.DataFrame, p: Proposal) -> None:
    if p.timestamp_column is not None:
        p.split = "time"
        p.split_why = f"by '{p.timestamp_column}': train on the past, judge on the future"
        if p.group_column is not None:
            p.split_why += (
                f"; to judge on {p.group_column} values never seen in training instead, use "
                f"strategy: group with group_column: {p.group_column}"
            )
        return
    if p.group_column is not None:
        groups = int(frame[p.group_column].nunique())
        p.split = "group"
        p.split_why = (
            f"'{p.group_column}' names an entity with {groups:,} values over {len(frame):,} "
            "rows: all rows of one entity stay in one split, so the test set measures how "
            "the model does on entities it never saw (rows of one entity are alike, and a "
            "random split would let the model remember them)"
        )
        return
    if p.task == "regression":
        p.split = "random"
        p.split_why = "no timestamp or entity column: a seeded random split"
    else:
        p.split = "stratified"
        p.split_why = (
            "no timestamp or entity column: a seeded random split that keeps the class "
            "balance in train, valid and test"
        )


# --- helpers ------------------------------------------------------------------------


def _is_date(series: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return True
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return False
    probe = series.dropna().astype(str).head(200)
    if probe.empty or probe.str.match(_DATE_TEXT).mean() < 0.95:
        return False
    try:
        # As ingest parses a text timestamp (one format, inferred from the first value),
        # so that a column proposed as the timestamp is one `mlcycle run` can read.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(probe, errors="coerce", utc=True)
    except (ValueError, TypeError, OverflowError):
        return False
    return bool(parsed.notna().mean() >= 0.95)


def _id_named(name: str) -> bool:
    """``id``, ``order_id``, ``ORDER-ID``, ``orderId``, ``uuid``, ``row_key``."""
    return bool(_ID_NAME.search(name) or _CAMEL_ID.search(name))


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value a YAML spec holds (1.0 → 1)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _value_counts(y: pd.Series, shown: int = 4) -> str:
    counts = y.value_counts()
    parts = [f"{_plain(v)}: {n:,}" for v, n in counts.head(shown).items()]
    more = f", +{len(counts) - shown} more" if len(counts) > shown else ""
    return ", ".join(parts) + more
