"""Leakage suspects for ``mlcycle init --data``: columns known only after the outcome.

Two checks, each adding a :class:`~mlcycle.data.scaffold_proposal.ColumnNote` to the
proposal with a reason a person can check: :func:`leakage_by_name` (a name that means
"after the outcome", an arrival measurement beside a delay target, or the target's own
name in another column) and :func:`leakage_by_purity` (a column that alone predicts the
target on held-out rows almost perfectly, from a one-feature binned model).

Example:
    >>> p = propose(df, "churned")             # runs both checks
    >>> leakage_by_name("refund_amount", p)     # or one of them on its own
    >>> p.notes[-1].issue
    'leakage_name'
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mlcycle.data.scaffold_proposal import ColumnNote, Proposal
from mlcycle.spec import Task

__all__ = [
    "LEAK_ERROR_CUT",
    "LEAK_R2",
    "PURITY_MIN_ROWS",
    "SAMPLE_ROWS",
    "leakage_by_name",
    "leakage_by_purity",
]

SAMPLE_ROWS = 200_000  # rows the purity checks look at (the cheap checks see all rows read)
PURITY_MIN_ROWS = 100  # fewer labelled rows than this: no purity check
LEAK_ERROR_CUT = 0.9  # a column alone removing this share of the baseline error is suspect
LEAK_R2 = 0.95  # regression: a column alone explaining this share of the variance

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


def leakage_by_name(name: str, p: Proposal) -> None:
    """A note on ``p`` when the name means "known after the outcome" or repeats the target's name.

    Example:
        >>> leakage_by_name("arr_delay", p)  # p.target == "delayed"
        >>> p.notes[-1].detail.startswith("an arrival measurement")
        True
    """
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


def leakage_by_purity(frame: pd.DataFrame, p: Proposal, seed: int) -> None:
    """A note on ``p`` for each column that alone predicts the target on held-out rows.

    One-feature model: the column is cut into up to 100 quantile bins (numbers) or
    taken value by value (text, booleans); per-bin target means or majority classes
    are learned on one half of the rows and scored on the other half. ``frame`` holds the
    labelled rows only; columns ``p`` already excludes, its id and timestamp are skipped.

    Example:
        >>> leakage_by_purity(df[df[p.target].notna()], p, seed=0)
        >>> [n.column for n in p.notes if n.issue == "leakage_purity"]
        ['final_price']
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


def _snake(name: str) -> str:
    """``arrDelay`` / ``Arr Delay`` → ``arr_delay``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")
