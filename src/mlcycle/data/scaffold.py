"""Proposing a spec for data a person brings: ``mlcycle init DIR --data FILE --target COLUMN``.

:func:`propose` looks at a frame and its target column and decides, each time
with a reason a person can check: the task (binary, multiclass, regression),
the positive label, an id column, a timestamp column (then a time split) or an
entity column (then a group split), the primary metric, and the columns a
person must look at: constant, all-null, id-like, very high cardinality, dates
the model cannot use as they are, and leakage suspects (a name that means
"after the outcome", or a column that alone predicts the target on held-out
rows almost perfectly). :func:`render_spec` writes that as a commented
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from mlcycle.data.infer import mostly_numeric
from mlcycle.data.sources import read_source
from mlcycle.errors import BadInput
from mlcycle.spec import Source, Task

SAMPLE_ROWS = 200_000  # rows the purity checks look at (the cheap checks see all rows read)
MAX_CLASSES = 50  # a text target with more distinct values is not a class label
MAX_INT_CLASSES = 10  # integer targets with at most this many values are classes
RARE_POSITIVE = 0.10  # below this share of positives, pr_auc replaces roc_auc
PURITY_MIN_ROWS = 100  # fewer labelled rows than this: no purity check
LEAK_ERROR_CUT = 0.9  # a column alone removing this share of the baseline error is suspect
LEAK_R2 = 0.95  # regression: a column alone explaining this share of the variance
HIGH_CARDINALITY = 200  # the spec's default data.features.max_categories
MIN_TIMESTAMPS = 20  # distinct instants a time split needs to make sense

Issue = Literal[
    "all_null",
    "constant",
    "id_like",
    "high_cardinality",
    "date",
    "leakage_name",
    "leakage_purity",
]

# Name parts that mean "known only after the outcome".
_AFTER_WORDS = frozenset(
    {
        "after",
        "outcome",
        "outcomes",
        "result",
        "results",
        "final",
        "refund",
        "refunded",
        "refunds",
        "chargeback",
        "chargebacks",
        "resolution",
        "resolved",
        "label",
        "actual",
        "future",
        "settled",
    }
)
_DELAY_WORDS = ("delay", "late", "arriv")  # a target like these: arr_* / arrival* leak it
_PLANNED_WORDS = frozenset({"sched", "scheduled", "planned", "expected", "est", "estimated"})
_ID_NAME = re.compile(r"(^|[_\W])(id|uuid|guid|key)$|^id[_\W]", re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z](Id|ID)$")  # customerId, orderID
_ENTITY_NAME = re.compile(
    r"(customer|user|client|account|patient|member|device|player|driver|store|shop|"
    r"merchant|household|subject|session|company|employee|vendor|supplier|machine|sensor)",
    re.IGNORECASE,
)
_TIME_NAME = re.compile(r"(time|date|_ts$|^ts$|timestamp|created|updated|day|_at$)", re.I)
_DATE_TEXT = re.compile(r"^\s*(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})([ T]\d|\s*$)")


@dataclass(frozen=True)
class ColumnNote:
    """A column a person must look at: what is wrong with it, why, and whether it is excluded.

    Example:
        >>> ColumnNote("country", "constant", "only the value 'FR'", exclude=True).issue
        'constant'
    """

    column: str
    issue: Issue
    detail: str
    exclude: bool = True

    @property
    def title(self) -> str:
        """The issue as a person reads it (``LEAKAGE SUSPECT (name)``)."""
        return _TITLES[self.issue]


_TITLES: dict[str, str] = {
    "all_null": "all null",
    "constant": "constant",
    "id_like": "id-like",
    "high_cardinality": "very high cardinality",
    "date": "raw date",
    "leakage_name": "LEAKAGE SUSPECT (by name)",
    "leakage_purity": "LEAKAGE SUSPECT (predicts the target alone)",
}


@dataclass
class Proposal:
    """What :func:`propose` decided for one frame, each decision with its reason.

    Example:
        >>> p = propose(df, "churned")
        >>> p.excluded  # columns written to data.features.exclude, each with a comment
        ['refund_amount']
    """

    target: str
    task: Task
    task_why: str
    metric: str
    metric_why: str
    rows: int
    positive_label: str | int | bool | None = None
    positive_why: str = ""
    id_column: str | None = None
    id_why: str = ""
    timestamp_column: str | None = None
    timestamp_why: str = ""
    group_column: str | None = None  # an entity column (the split's comment says why)
    split: Literal["time", "random", "stratified", "group"] = "random"
    split_why: str = ""
    null_targets: int = 0
    notes: list[ColumnNote] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def excluded(self) -> list[str]:
        """Columns to leave out of the features (each has a note saying why)."""
        return list(dict.fromkeys(n.column for n in self.notes if n.exclude))


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
    check sees a seeded sample of at most :data:`SAMPLE_ROWS` rows.

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
    _leakage_by_purity(frame[labelled], proposal, seed)
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
        _leakage_by_name(name, p)
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
            _leakage_by_name(name, p)


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


def _leakage_by_name(name: str, p: Proposal) -> None:
    """A note when the name means "known after the outcome" or repeats the target's name."""
    words = [w for w in re.split(r"[^a-z0-9]+", _snake(name)) if w]
    hit = next((w for w in words if w in _AFTER_WORDS), None)
    why = f"its name ('{hit}') suggests a value known only after the outcome" if hit else ""
    target = _snake(p.target)
    delay_like = any(d in target for d in _DELAY_WORDS)
    planned = any(w in _PLANNED_WORDS for w in words)  # sched_arr_time is known in advance
    if not why and delay_like and not planned and any(w.startswith("arr") for w in words):
        why = "an arrival measurement, known only once the delay itself is"
    if why:
        p.notes.append(
            ColumnNote(
                name,
                "leakage_name",
                f"{why}; keep it out unless it is known when you predict",
            )
        )
        return
    stem = re.sub(r"(ed|ing|s)$", "", target.split("_")[-1]) if target else ""
    if len(stem) >= 4 and stem in _snake(name):
        # Weaker: dep_delay beside a 'delayed' target is a fair feature, arr_delay is not.
        # So this one is flagged for a person to decide, not excluded.
        p.notes.append(
            ColumnNote(
                name,
                "leakage_name",
                f"its name contains the target's ('{stem}'): check it is not the target in "
                "another form, measured after the outcome (then add it to exclude)",
                exclude=False,
            )
        )


def _leakage_by_purity(frame: pd.DataFrame, p: Proposal, seed: int) -> None:
    """A note for each column that alone predicts the target on held-out rows.

    One-feature model: the column is cut into up to 100 quantile bins (numbers) or
    taken value by value (text, booleans); per-bin target means or majority classes
    are learned on one half of the rows and scored on the other half.
    """
    if len(frame) < PURITY_MIN_ROWS:
        return
    if len(frame) > SAMPLE_ROWS:
        frame = frame.sample(SAMPLE_ROWS, random_state=seed)
    skip = {p.target, p.id_column, p.timestamp_column, *p.excluded}
    half = np.random.default_rng(seed).random(len(frame)) < 0.5
    y = frame[p.target]
    for name in frame.columns:
        if name in skip:
            continue
        score = _one_feature_score(frame[name], y, half, p.task)
        if score is None:
            continue
        value, what = score
        if value >= (LEAK_R2 if p.task == "regression" else LEAK_ERROR_CUT):
            p.notes.append(
                ColumnNote(
                    name,
                    "leakage_purity",
                    f"alone it predicts '{p.target}' on held-out rows "
                    f"({what}); a real feature rarely does; check it is known when you "
                    "predict, and include it again only if it is",
                )
            )


def _one_feature_score(
    x: pd.Series, y: pd.Series, half: np.ndarray, task: Task
) -> tuple[float, str] | None:
    """(score, description) of a per-bin model of ``y`` on ``x``, fitted on ``half``."""
    if pd.api.types.is_numeric_dtype(x.dtype) and not pd.api.types.is_bool_dtype(x.dtype):
        values = x.astype("float64")
        if values.nunique() > 100:
            try:
                bins = pd.qcut(values, 100, labels=False, duplicates="drop")
            except ValueError:
                return None
        else:
            bins = values
    elif pd.api.types.is_datetime64_any_dtype(x.dtype):
        return None
    else:
        bins = x.astype("string")
    key = bins.astype("string").fillna("<missing>").to_numpy()
    train_key, test_key = key[half], key[~half]
    y_train, y_test = y[half], y[~half]
    if len(y_test) < PURITY_MIN_ROWS // 2 or len(y_train) < PURITY_MIN_ROWS // 2:
        return None
    if task == "regression":
        target = y_train.astype("float64")
        means = pd.Series(target.to_numpy()).groupby(train_key).mean()
        guess = pd.Series(test_key).map(means).fillna(target.mean()).to_numpy()
        actual = y_test.astype("float64").to_numpy()
        total = float(((actual - actual.mean()) ** 2).sum())
        if total == 0:
            return None
        r2 = 1 - float(((actual - guess) ** 2).sum()) / total
        return r2, f"R² {r2:.3f} from this column alone"
    labels = pd.Series(y_train.astype("string").to_numpy())
    majority = labels.groupby(train_key).agg(lambda s: s.value_counts().index[0])
    fallback = labels.value_counts().index[0]
    predicted = pd.Series(test_key).map(majority).fillna(fallback).to_numpy()
    actual_labels = y_test.astype("string").to_numpy()
    error = float((predicted != actual_labels).mean())
    base = float((actual_labels != fallback).mean())
    if base == 0:
        return None
    cut = 1 - error / base
    return cut, f"accuracy {1 - error:.3f} against {1 - base:.3f} for the majority class"


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


def _snake(name: str) -> str:
    """``arrDelay`` / ``Arr Delay`` → ``arr_delay``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


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


# --- writing ------------------------------------------------------------------------


def render_spec(p: Proposal, *, project: str, source: Source, origin: str) -> str:
    """The proposal as a commented ``mlcycle.yaml``: every choice says why and what to change.

    ``origin`` says where the rows came from (shown in the header comment).

    Example:
        >>> text = render_spec(p, project="churn", source=Source(path="data.csv"),
        ...                    origin="2,000 rows of data.csv")
        >>> Spec.from_dict(yaml.safe_load(text)).problem.task
        'binary'
    """
    out = [
        f"# mlcycle project written by `mlcycle init --data` from {origin}.",
        "# Each choice below says why it was made. Read the comments marked CHECK,",
        "# change what is wrong, then run `mlcycle run`.",
        f"project: {_y(project)}",
        "",
        "problem:",
        *_comment(p.task_why, 2),
        f"  task: {p.task}",
        f"  target: {_y(p.target)}",
    ]
    if p.positive_label is not None:
        out += [*_comment(p.positive_why, 2), f"  positive_label: {_y(p.positive_label)}"]
    if p.id_column is not None:
        out += [*_comment(p.id_why, 2), f"  id_column: {_y(p.id_column)}"]
    if p.timestamp_column is not None:
        out += [*_comment(p.timestamp_why, 2), f"  timestamp_column: {_y(p.timestamp_column)}"]
    out += [*_comment(p.metric_why, 2), f"  primary_metric: {p.metric}", "", "data:"]
    out += ["  source:", *_source_lines(source), "  features:"]
    excluded = p.excluded
    if excluded:
        out.append("    # Left out of the model; delete a line to use that column again.")
        out.append("    exclude:")
        for name in excluded:
            for note in (n for n in p.notes if n.column == name and n.exclude):
                out += _comment(f"CHECK {note.title}: {note.detail}", 6)
            out.append(f"      - {_y(name)}")
    else:
        out.append("    exclude: []   # every column but the target, id and timestamp is used")
    review = [n for n in p.notes if not n.exclude and n.column not in excluded]
    for note in review:
        out += _comment(f"CHECK '{note.column}' (kept as a feature): {note.detail}", 4)
    if p.null_targets:
        out += _comment(
            f"{p.null_targets:,} row(s) have no '{p.target}': rows without a label cannot "
            "train or judge a model, so this transform drops them",
            2,
        )
        quoted = '"' + p.target.replace('"', '""') + '"'
        keep = f"SELECT * FROM raw WHERE {quoted} IS NOT NULL"
        # Single-quoted YAML keeps the SQL's double quotes readable ('' is a quote in it).
        out += ["  transforms:", "    - sql: '" + keep.replace("'", "''") + "'"]
    for warning in p.warnings:
        out += _comment(f"CHECK: {warning}", 2)
    group = f", group_column: {_y(p.group_column)}" if p.split == "group" else ""
    out += [
        "",
        "prepare:",
        *_comment(p.split_why, 2),
        f"  split: {{strategy: {p.split}{group}, valid_fraction: 0.15, test_fraction: 0.15}}",
        "",
        "train:",
        "  seed: 42",
        "  # Gradient-boosted trees: strong on tabular data, handle missing values and",
        "  # categories without tuning. Add candidates to compare more models.",
        "  candidates:",
        "    - {name: hgb, estimator: hist_gradient_boosting, params: {}}",
        "",
        "gates:",
        "  # A model is registered only if it beats a trivial baseline on the test split.",
        "  # Add thresholds (e.g. {" + f"{p.metric}: …" + "}) once you know what is good enough.",
        "  baseline_margin: 0.0",
        "",
    ]
    return "\n".join(out)


def _source_lines(source: Source) -> list[str]:
    if source.sql is not None:
        return [f"    url: {_y(source.url)}", f"    sql: {_y(source.sql)}"]
    lines = [f"    path: {_y(source.path)}"]
    if source.encoding != "utf-8":
        lines.append(f"    encoding: {_y(source.encoding)}")
    return lines


def _y(value: Any) -> str:
    """A scalar as YAML: JSON strings and numbers are YAML too, and quoting every string
    keeps 'yes', 'no', 'null' and '1e3' the text they are."""
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str, indent: int, width: int = 88) -> list[str]:
    """``text`` as ``#`` comment lines wrapped to ``width`` columns."""
    import textwrap

    prefix = " " * indent + "# "
    return textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent=prefix)
