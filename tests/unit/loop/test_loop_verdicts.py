"""Shadow and watch verdicts: pure functions over prediction-log rows and labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlcycle.loop.verdicts import agreement, pair, shadow_verdict, watch_verdict
from mlcycle.spec.loop import Guardrails, Shadow, Watch

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)


def _world(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' P(True): ``good`` informative, ``weak`` much less so."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-2 * x))
    good = 1 / (1 + np.exp(-2 * x))
    weak = 1 / (1 + np.exp(-(0.3 * x + rng.normal(scale=1.5, size=n))))
    return y, good, weak


def _log(
    served: np.ndarray, shadow: np.ndarray | None, *, versions=(1, 2), keep=1.0
) -> pd.DataFrame:
    n = len(served)
    ids = [f"row{i}" for i in range(n)]
    frames = []
    sides = [("champion", versions[0], served)]
    if shadow is not None:
        sides.append(("shadow", versions[1], shadow))
    for role, version, p in sides:
        frame = pd.DataFrame(
            {
                "request_id": [f"req{i // 10}" for i in range(n)],
                "ts": [T0 + timedelta(seconds=1 + i) for i in range(n)],
                "model": "m",
                "model_version": version,
                "role": role,
                "row_id": ids,
                "prediction": np.where(p >= 0.5, "True", "False"),
                "probability": p,
            }
        )
        if role == "shadow":
            frame = frame.iloc[: int(n * keep)]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _labels(y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"row_id": [f"row{i}" for i in range(len(y))], "label": y.astype(str)})


SHADOW = Shadow(min_rows=200, min_duration=timedelta(hours=1))
NO_LABELS = pd.DataFrame(columns=["row_id", "label"])


def _shadow(log: pd.DataFrame, labels: pd.DataFrame, now: datetime = LATER, **kw):
    return shadow_verdict(
        log,
        labels,
        task="binary",
        metric="roc_auc",
        positive="True",
        champion=1,
        challenger=2,
        shadow=kw.pop("shadow", SHADOW),
        started=T0,
        now=now,
        **kw,
    )


def test_rows_are_paired_on_request_and_row_id_and_missing_ones_counted() -> None:
    _, good, weak = _world(100)
    pairs = pair(_log(good, weak, keep=0.9), served=1, shadow=2)
    assert (pairs.rows, pairs.served_rows, pairs.missing) == (90, 100, 10)
    # Other versions are not this pair's rows.
    assert pair(_log(good, weak, versions=(1, 3)), served=1, shadow=2).rows == 0


def test_without_labels_the_guardrails_judge() -> None:
    _, good, _ = _world()
    verdict = _shadow(_log(good, good + 0.01), NO_LABELS)
    assert verdict.status == "passed" and verdict.test is None
    assert "guardrails (no labels yet)" in verdict.reason
    # A shadow that failed on 5% of the rows breaks the 1% error-rate guardrail.
    failing = _shadow(_log(good, good, keep=0.95), NO_LABELS)
    assert failing.status == "failed" and "no shadow row" in failing.reason
    # A shadow that answers the opposite breaks agreement.
    assert _shadow(_log(good, 1 - good), NO_LABELS).status == "failed"


def test_a_pass_waits_for_rows_and_time_but_a_failure_does_not() -> None:
    _, good, _ = _world()
    early = T0 + timedelta(minutes=20)
    assert _shadow(_log(good[:100], good[:100]), NO_LABELS).status == "pending"  # 100 < 200 rows
    assert _shadow(_log(good, good), NO_LABELS, now=early).status == "pending"
    assert _shadow(_log(good, 1 - good), NO_LABELS, now=early).status == "failed"


def test_with_labels_the_gates_paired_test_judges_on_the_same_rows() -> None:
    y, good, weak = _world()
    # Agreement is set low: the two models disagree often, the paired test must decide.
    lax = Shadow(
        min_rows=200, min_duration=timedelta(hours=1), guardrails=Guardrails(min_agreement=0)
    )
    better = _shadow(_log(weak, good), _labels(y), shadow=lax)
    assert better.status == "passed" and better.test is not None
    assert better.test["test"] == "delong" and better.test["improvement"] > 0.1
    assert better.labelled == len(y)
    worse = _shadow(_log(good, weak), _labels(y), shadow=lax)
    assert worse.status == "failed" and "delong paired test: roc_auc -0.3" in worse.reason


def test_watch_rolls_back_a_worse_champion_but_not_an_equal_one() -> None:
    y, good, weak = _world()
    watch = Watch(min_rows=200, duration=timedelta(hours=1), tolerance=0.005)
    lax = Guardrails(min_agreement=0)

    def judge(served: np.ndarray, previous: np.ndarray):
        return watch_verdict(
            _log(served, previous, versions=(2, 1)),
            _labels(y),
            task="binary",
            metric="roc_auc",
            positive="True",
            champion=2,
            previous=1,
            watch=watch,
            guardrails=lax,
            started=T0,
            now=T0 + timedelta(minutes=10),
        )

    assert judge(weak, good).status == "failed"  # within the window: rolled back at once
    assert judge(good, good).status == "pending"  # fine so far; passes after the duration


def test_regression_agreement_is_relative_to_the_spread_of_predictions() -> None:
    rng = np.random.default_rng(1)
    served = rng.normal(10, 4, size=500)
    close = pair(_reg_log(served, served + 1.0), served=1, shadow=2)
    far = pair(_reg_log(served, served + 5.0), served=1, shadow=2)
    assert agreement(close, "regression") == pytest.approx(1.0)
    assert agreement(far, "regression") == pytest.approx(0.0)


def _reg_log(a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    log = _log(np.zeros(len(a)), np.zeros(len(a)))
    log["prediction"] = np.r_[a, b]
    return log


def _with_latency(log: pd.DataFrame, served_ms: float, shadow_ms: float | None) -> pd.DataFrame:
    """The log's latency_ms: per role; None = an old file or a batch row (null)."""
    ms = np.where(log["role"] == "champion", served_ms, np.nan if shadow_ms is None else shadow_ms)
    return log.assign(latency_ms=ms)


def test_latency_p99_judges_the_challenger_in_shadow() -> None:
    _, good, _ = _world()
    limits = Shadow(min_rows=200, min_duration=timedelta(hours=1))
    limits = limits.model_copy(update={"guardrails": Guardrails(max_p99_ms=50)})
    slow = _shadow(_with_latency(_log(good, good), 5, 80), NO_LABELS, shadow=limits)
    assert slow.status == "failed" and "latency p99 80.0 ms" in slow.reason
    fast = _shadow(_with_latency(_log(good, good), 80, 5), NO_LABELS, shadow=limits)
    assert fast.status == "passed"  # the champion's latency is not the challenger's
    assert "latency_p99" in [c.name for c in fast.checks]
    # Null latencies (files written before the column, batch rows): no latency check.
    unknown = _shadow(_with_latency(_log(good, good), 5, None), NO_LABELS, shadow=limits)
    assert unknown.status == "passed"
    assert "latency_p99" not in [c.name for c in unknown.checks]


def test_latency_p99_judges_the_new_champion_in_watch() -> None:
    _, good, _ = _world()

    def judge(served_ms: float, previous_ms: float):
        return watch_verdict(
            _with_latency(_log(good, good, versions=(2, 1)), served_ms, previous_ms),
            NO_LABELS,
            task="binary",
            metric="roc_auc",
            positive="True",
            champion=2,
            previous=1,
            watch=Watch(min_rows=200, duration=timedelta(hours=1)),
            guardrails=Guardrails(max_p99_ms=50),
            started=T0,
            now=LATER,
        )

    assert judge(80, 5).status == "failed"  # the new champion is slow: rolled back
    assert judge(5, 80).status == "passed"  # the old one was slow: nothing to say
