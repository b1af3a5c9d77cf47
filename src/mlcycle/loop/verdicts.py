"""Judging a model that scored live traffic beside another: pure functions over frames.

Two moments use them. **Shadow**: the champion answers, the blessed challenger
scores the same rows (role ``shadow`` in the prediction log, same ``request_id``
and ``row_id``); once ``shadow.min_rows`` paired rows and ``shadow.min_duration``
are in, :func:`shadow_verdict` says whether it may be promoted. **Watch**: after
a promotion the previous champion shadows the new one; :func:`watch_verdict`
says whether the new champion must be rolled back.

Without labels a model is judged by guardrails (:func:`guardrail_checks`):

- error rate: the share of served rows with no shadow row (the shadow failed on
  them). Only the shadow side can be measured this way, so it applies to the
  challenger in shadow and not to the new champion in watch;
- agreement: the share of paired rows whose labels agree (classifiers), or whose
  predictions lie within ``REGRESSION_AGREEMENT`` × the served predictions'
  standard deviation of each other (regression);
- latency p99: the judged model's p99 of ``latency_ms`` (the request's model time, logged
  per row by ``mlcycle serve``), on the rows that have one, at most ``max_p99_ms``.

With labels (``row_id`` → ``label``, as ``mlcycle monitor labels`` stores them)
the two models are compared on the same labelled rows by the gate's paired test
for the primary metric (:func:`mlcycle.evaluate.compare_models`: DeLong for
ROC-AUC, McNemar for accuracy, paired bootstrap otherwise), once at least
:data:`mlcycle.evaluate.compare.MIN_PAIRED_ROWS` paired rows are labelled.

A failure may be called as soon as ``min_rows`` rows are paired; a pass also
needs the minimum duration. Nothing here reads the store or the clock: the live
loop and the backtest pass the log rows, the labels and ``now``.

Example:
    >>> v = shadow_verdict(log, labels, task="binary", metric="roc_auc", positive="True",
    ...                    champion=3, challenger=4, shadow=spec.loop.shadow,
    ...                    started=t0, now=t0 + timedelta(hours=2))
    >>> v.status, v.reason
    ('passed', 'challenger v4 kept every guardrail on 1200 rows; roc_auc +0.0040 ...')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcycle.spec.loop import Guardrails, Shadow, Watch

#: Regression rows "agree" when their predictions differ by at most this share of the
#: served predictions' standard deviation.
REGRESSION_AGREEMENT = 0.5
#: Served rows younger than this (seconds before ``now``) are not counted as missing a
#: shadow row: the shadow scores after the response and its log is written ~1 s later.
SHADOW_GRACE_SECONDS = 5.0
#: The log column a latency guardrail reads, when the log has it.
LATENCY_COLUMN = "latency_ms"

Status = Literal["pending", "passed", "failed"]


@dataclass(frozen=True)
class Pairs:
    """Served rows joined to shadow rows on (``request_id``, ``row_id``).

    ``frame`` has ``row_id``, ``ts``, and each score column twice, suffixed
    ``_served`` and ``_shadow`` (``prediction``, ``probability``, ``proba_<class>``,
    ``latency_ms`` when logged). ``served_rows`` counts the served rows considered
    (the grace period excluded); ``missing`` those of them without a shadow row.
    """

    frame: pd.DataFrame
    served_rows: int
    missing: int

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class Check:
    """One guardrail or test: its name, whether it held, and the figures behind it."""

    name: str
    passed: bool
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, **self.figures}


@dataclass(frozen=True)
class Verdict:
    """``pending`` (not enough rows or time yet), ``passed`` or ``failed``, and why.

    Example:
        >>> Verdict("pending", "120 of 1000 paired rows").to_dict()["status"]
        'pending'
    """

    status: Status
    reason: str
    rows: int = 0
    labelled: int = 0
    checks: tuple[Check, ...] = ()
    test: dict[str, Any] | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "rows": self.rows,
            "labelled": self.labelled,
            "checks": [c.to_dict() for c in self.checks],
            "test": self.test,
        }


def _side(log: pd.DataFrame, role: str, version: int) -> pd.DataFrame:
    rows = log[(log["role"] == role) & (log["model_version"].astype("int64") == int(version))]
    rows = rows.assign(
        request_id=rows["request_id"].astype(str),
        row_id=rows["row_id"].astype(str),
    )
    return rows.drop_duplicates(["request_id", "row_id"], keep="first")


def score_columns(log: pd.DataFrame) -> list[str]:
    """The columns that carry a model's answer (and its latency when logged)."""
    keep = ["prediction", "probability", LATENCY_COLUMN]
    return [c for c in log.columns if c in keep or str(c).startswith("proba_")]


def pair(
    log: pd.DataFrame,
    *,
    served: int,
    shadow: int,
    since: datetime | None = None,
    now: datetime | None = None,
) -> Pairs:
    """Join the rows version ``served`` answered (role ``champion``) to version ``shadow``'s.

    Only rows logged at or after ``since`` count. Served rows within
    :data:`SHADOW_GRACE_SECONDS` of ``now`` are left out (their shadow row may not
    be written yet).

    Example:
        >>> pair(log, served=3, shadow=4).rows
        1200
    """
    if len(log) == 0:
        return Pairs(pd.DataFrame(columns=["row_id", "ts"]), 0, 0)
    ts = pd.to_datetime(log["ts"], utc=True)
    keep = pd.Series(True, index=log.index)
    if since is not None:
        keep &= ts >= pd.Timestamp(since).tz_convert("UTC")
    log = log[keep].assign(ts=ts[keep])
    served_rows = _side(log, "champion", served)
    if now is not None:
        cutoff = pd.Timestamp(now).tz_convert("UTC") - pd.Timedelta(seconds=SHADOW_GRACE_SECONDS)
        served_rows = served_rows[served_rows["ts"] <= cutoff]
    shadow_rows = _side(log, "shadow", shadow)
    # The shadow starts with the first row it logged (a server loads a new challenger at
    # its next poll): served rows before that are not its failures.
    first = shadow_rows["ts"].min() if len(shadow_rows) else None
    served_rows = (
        served_rows.iloc[0:0] if first is None else served_rows[served_rows["ts"] >= first]
    )
    cols = score_columns(log)
    left = served_rows[["request_id", "row_id", "ts", *cols]]
    right = shadow_rows[["request_id", "row_id", *cols]]
    joined = left.merge(
        right,
        on=["request_id", "row_id"],
        how="left",
        suffixes=("_served", "_shadow"),
        indicator=True,
    )
    matched = joined["_merge"] == "both"
    frame = joined[matched].drop(columns=["_merge"]).reset_index(drop=True)
    return Pairs(frame, len(served_rows), int((~matched).sum()))


def agreement(pairs: Pairs, task: str) -> float | None:
    """The share of paired rows on which the two models agree (module docs); None if none."""
    if pairs.rows == 0:
        return None
    a, b = pairs.frame["prediction_served"], pairs.frame["prediction_shadow"]
    if task == "regression":
        served = a.astype("float64").to_numpy()
        other = b.astype("float64").to_numpy()
        scale = float(np.std(served)) if len(served) > 1 else 0.0
        tolerance = REGRESSION_AGREEMENT * scale
        return float(np.mean(np.abs(served - other) <= tolerance + 1e-12))
    return float(np.mean(a.astype(str).to_numpy() == b.astype(str).to_numpy()))


def guardrail_checks(
    pairs: Pairs,
    limits: Guardrails,
    *,
    task: str,
    error_rate: bool = True,
    subject: Literal["shadow", "served"] = "shadow",
) -> list[Check]:
    """The label-free checks (module docs); ``error_rate=False`` skips the shadow-failure one.

    The latency p99 is the ``subject``'s: the challenger in shadow (``shadow``), the new
    champion in watch (``served``). It is checked only on rows whose latency was logged
    (log files written before ``latency_ms`` existed read it as null, batch rows too).

    Example:
        >>> [c.name for c in guardrail_checks(pairs, Guardrails(max_p99_ms=50), task="binary")]
        ['error_rate', 'agreement', 'latency_p99']
    """
    checks: list[Check] = []
    if error_rate:
        rate = pairs.missing / pairs.served_rows if pairs.served_rows else 0.0
        checks.append(
            Check(
                "error_rate",
                rate <= limits.max_error_rate,
                f"{pairs.missing} of {pairs.served_rows} served rows have no shadow row "
                f"({rate:.2%}; at most {limits.max_error_rate:.2%})",
                {"value": rate, "bound": limits.max_error_rate},
            )
        )
    agree = agreement(pairs, task)
    if agree is not None:
        checks.append(
            Check(
                "agreement",
                agree >= limits.min_agreement,
                f"the models agree on {agree:.1%} of {pairs.rows} paired rows "
                f"(at least {limits.min_agreement:.0%})",
                {"value": agree, "bound": limits.min_agreement},
            )
        )
    column = f"{LATENCY_COLUMN}_{subject}"
    if limits.max_p99_ms is not None and column in pairs.frame.columns:
        values = pd.to_numeric(pairs.frame[column], errors="coerce").to_numpy(dtype="float64")
        values = values[~np.isnan(values)]
        if len(values):
            p99 = float(np.percentile(values, 99))
            checks.append(
                Check(
                    "latency_p99",
                    p99 <= limits.max_p99_ms,
                    f"latency p99 {p99:.1f} ms on {len(values)} rows "
                    f"(at most {limits.max_p99_ms:.1f} ms)",
                    {"value": p99, "bound": limits.max_p99_ms, "rows": len(values)},
                )
            )
    return checks


def _scores(frame: pd.DataFrame, task: str, suffix: str) -> tuple[np.ndarray, list[str] | None]:
    """One side's scores in the form the paired tests take (and the class list if multiclass)."""
    if task == "regression":
        return frame[f"prediction{suffix}"].astype("float64").to_numpy(), None
    if task == "binary":
        return frame[f"probability{suffix}"].astype("float64").to_numpy(), None
    columns = sorted(c for c in frame.columns if c.startswith("proba_") and c.endswith(suffix))
    classes = [c[len("proba_") : -len(suffix)] for c in columns]
    return frame[columns].astype("float64").to_numpy(), classes


def labelled_pairs(pairs: Pairs, labels: pd.DataFrame) -> pd.DataFrame:
    """The paired rows that have a label, with a ``label`` column (text)."""
    if pairs.rows == 0 or len(labels) == 0:
        return pairs.frame.iloc[0:0].assign(label=pd.Series(dtype=object))
    known = (
        labels.assign(row_id=labels["row_id"].astype(str))
        .drop_duplicates("row_id")
        .set_index("row_id")["label"]
    )
    frame = pairs.frame.assign(label=pairs.frame["row_id"].map(known))
    return frame[frame["label"].notna()].reset_index(drop=True)


def paired_test(
    pairs: Pairs,
    labels: pd.DataFrame,
    *,
    task: str,
    metric: str,
    positive: str | None,
    subject: Literal["served", "shadow"],
    seed: int = 0,
) -> dict[str, Any] | None:
    """The gate's paired test of ``subject`` against the other side on the labelled pairs.

    ``improvement`` > 0 means ``subject`` is better (the sign is turned for
    lower-is-better metrics). None when fewer rows are labelled than the test
    needs (:func:`mlcycle.evaluate.compare.check_holdout_size`).

    Example:
        >>> paired_test(pairs, labels, task="binary", metric="roc_auc", positive="True",
        ...             subject="shadow")["test"]
        'delong'
    """
    from mlcycle.errors import BadInput
    from mlcycle.pipeline.stage_ops import compare_models

    frame = labelled_pairs(pairs, labels)
    if len(frame) == 0:
        return None
    other = "shadow" if subject == "served" else "served"
    mine, classes = _scores(frame, task, f"_{subject}")
    theirs, _ = _scores(frame, task, f"_{other}")
    y: Any = frame["label"].astype(str).to_numpy()
    if task == "regression":
        y = frame["label"].astype("float64").to_numpy()
    try:
        result = compare_models(
            task, metric, y, mine, theirs, positive_label=positive, classes=classes, seed=seed
        )
    except BadInput:
        return None  # too few labelled rows (or one class only) for the test: not yet
    return {**result, "rows": len(frame)}


def _judge(
    checks: list[Check],
    test: dict[str, Any] | None,
    test_passed: bool | None,
    *,
    pairs: Pairs,
    labelled: int,
    ready: bool,
    who: str,
) -> Verdict:
    """Fold guardrails and the test into one verdict; a pass waits for ``ready``."""
    all_checks = list(checks)
    if test is not None and test_passed is not None:
        all_checks.append(
            Check(
                f"paired:{test['test']}",
                test_passed,
                f"{test['test']} paired test: {test['metric']} {test['improvement']:+.4f} "
                f"(CI {test['ci_low']:+.4f} … {test['ci_high']:+.4f}) on {test['rows']} "
                "labelled rows",
                {"improvement": test["improvement"]},
            )
        )
    broken = [c for c in all_checks if not c.passed]
    if broken:
        reason = f"{who} failed: " + "; ".join(c.detail for c in broken)
        return Verdict("failed", reason, pairs.rows, labelled, tuple(all_checks), test)
    if not ready:
        return Verdict(
            "pending", f"{who}: nothing broken yet", pairs.rows, labelled, tuple(all_checks), test
        )
    basis = "guardrails and the paired test" if test is not None else "guardrails (no labels yet)"
    reason = f"{who} passed on {pairs.rows} paired rows by {basis}: " + "; ".join(
        c.detail for c in all_checks
    )
    return Verdict("passed", reason, pairs.rows, labelled, tuple(all_checks), test)


def shadow_verdict(
    log: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    task: str,
    metric: str,
    positive: str | None,
    champion: int,
    challenger: int,
    shadow: Shadow,
    started: datetime,
    now: datetime,
    mode: Literal["superiority", "non_inferiority"] = "non_inferiority",
    tolerance: float = 0.005,
) -> Verdict:
    """May the challenger (shadowing since ``started``) replace the champion?

    It fails on a broken guardrail, or, with enough labels, when the paired
    test's lower bound is not above the gate's bound (0 for ``superiority``,
    ``-tolerance`` for ``non_inferiority``: the gate's ``gates.champion``). It
    passes once ``shadow.min_rows`` rows are paired, ``shadow.min_duration`` has
    passed, and nothing failed.

    Example:
        >>> shadow_verdict(log, labels, task="binary", metric="roc_auc", positive="True",
        ...                champion=3, challenger=4, shadow=spec.loop.shadow,
        ...                started=t0, now=t0 + timedelta(hours=2)).status
        'passed'
    """
    pairs = pair(log, served=champion, shadow=challenger, since=started, now=now)
    if pairs.rows < shadow.min_rows:
        hint = (
            "" if pairs.rows else " (is `mlcycle serve --shadow` running? it scores the challenger)"
        )
        return Verdict(
            "pending", f"{pairs.rows} of {shadow.min_rows} paired rows so far{hint}", pairs.rows
        )
    checks = guardrail_checks(pairs, shadow.guardrails, task=task)
    test = paired_test(pairs, labels, task=task, metric=metric, positive=positive, subject="shadow")
    bound = 0.0 if mode == "superiority" else -tolerance
    passed = None if test is None else bool(test["ci_low"] > bound)
    if test is not None:
        test = {**test, "bound": bound}
    return _judge(
        checks,
        test,
        passed,
        pairs=pairs,
        labelled=0 if test is None else int(test["rows"]),
        ready=now - started >= shadow.min_duration,
        who=f"challenger v{challenger}",
    )


def watch_verdict(
    log: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    task: str,
    metric: str,
    positive: str | None,
    champion: int,
    previous: int,
    watch: Watch,
    guardrails: Guardrails,
    started: datetime,
    now: datetime,
) -> Verdict:
    """Must the new ``champion`` (promoted at ``started``) be rolled back to ``previous``?

    It fails when it breaks the agreement (or latency) guardrail, or, with
    enough labels, when it is worse on the same rows beyond ``watch.tolerance``
    (improvement < −tolerance) and significantly so (the interval's upper bound
    below 0) — the gate's rule for slices. It passes after ``watch.duration``
    with ``watch.min_rows`` paired rows and nothing failed.

    Example:
        >>> watch_verdict(log, labels, task="regression", metric="mae", positive=None,
        ...               champion=4, previous=3, watch=spec.loop.watch,
        ...               guardrails=spec.loop.shadow.guardrails, started=t0, now=t1).status
        'failed'
    """
    pairs = pair(log, served=champion, shadow=previous, since=started, now=now)
    if pairs.rows < watch.min_rows:
        return Verdict(
            "pending", f"{pairs.rows} of {watch.min_rows} paired rows so far", pairs.rows
        )
    # The shadow here is the old champion: its failures say nothing of the new one.
    checks = guardrail_checks(pairs, guardrails, task=task, error_rate=False, subject="served")
    test = paired_test(pairs, labels, task=task, metric=metric, positive=positive, subject="served")
    passed = None
    if test is not None:
        worse = test["improvement"] < -watch.tolerance and test["ci_high"] < 0
        passed = not worse
        test = {**test, "bound": -watch.tolerance}
    return _judge(
        checks,
        test,
        passed,
        pairs=pairs,
        labelled=0 if test is None else int(test["rows"]),
        ready=now - started >= watch.duration,
        who=f"champion v{champion}",
    )
