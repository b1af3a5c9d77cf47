"""What the loop knows when it decides whether to retrain: the contract between the live
loop (which reads these from the store and the monitoring tables), the backtest (which
builds them on a virtual clock) and the policy (:func:`mlcycle.loop.policy.decide`, a pure
function of them).

Everything is plain data, so a decision can be stored with the loop run and replayed.

Example:
    >>> from datetime import datetime, timezone
    >>> now = datetime(2013, 8, 1, tzinfo=timezone.utc)
    >>> s = Signals(now=now, holdout=HoldoutSignal("roc_auc", 0.89, 0.88, 0.90, True))
    >>> s.new_rows, s.drift_streak
    (0, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from mlcycle.spec import LOWER_IS_BETTER

if TYPE_CHECKING:
    from mlcycle.artifacts import Evaluation

TriggerName = Literal["schedule", "new_data", "drift", "performance", "manual"]


@dataclass(frozen=True)
class HoldoutSignal:
    """The champion's holdout figure for the primary metric, with its confidence interval.

    ``benefit_per_row`` is the holdout benefit per row at the decision threshold when the
    spec has a benefit matrix (binary tasks), else None.
    """

    metric: str
    value: float
    ci_low: float
    ci_high: float
    higher_is_better: bool
    benefit_per_row: float | None = None

    @classmethod
    def of(cls, evaluation: Evaluation, metric: str) -> HoldoutSignal:
        """The candidate's holdout figure in ``evaluation`` (a champion's, in its own bundle).

        Example:
            >>> HoldoutSignal.of(bundle.evaluation(), "roc_auc").ci_low
            0.9106
        """
        value = float(evaluation.metrics["candidate"][metric])
        low, high = evaluation.intervals.get("candidate", {}).get(metric, (value, value))
        benefit = evaluation.benefit.per_row.get("candidate") if evaluation.benefit else None
        return cls(
            metric=metric,
            value=value,
            ci_low=float(low),
            ci_high=float(high),
            higher_is_better=metric not in LOWER_IS_BETTER,
            benefit_per_row=None if benefit is None else float(benefit),
        )


@dataclass(frozen=True)
class WindowSignal:
    """One monitoring window of the champion's traffic since it was trained, oldest first.

    ``realized`` is the primary metric on the window's labelled rows (None below
    ``monitor.min_labels``); ``estimated`` the label-free estimate (CBPE, binary only);
    ``benefit_per_row`` the realized benefit per labelled row when the spec has a benefit
    matrix; ``drift_alert`` whether a drift alert fired for the window.
    """

    start: datetime
    end: datetime
    rows: int
    labelled_rows: int = 0
    realized: float | None = None
    estimated: float | None = None
    benefit_per_row: float | None = None
    drift_alert: bool = False


@dataclass(frozen=True)
class RecoverySignal:
    """The estimated recoverable gain per row of retraining now, with its evidence.

    ``gain_per_row`` is the lower confidence bound (never below 0) of ``mean_per_row``,
    the mean paired difference on ``rows`` rows of the latest labelled window; ``units``
    says what a row's gain counts (``benefit``, ``correct``, ``abs_error``,
    ``squared_error``, ``abs_pct_error``); ``method`` the correction tested; ``fit`` its
    parameters (intercept/slope, threshold ...).

    Example:
        >>> r = RecoverySignal(0.8, 0.9, 0.8, 365, "abs_error", "intercept and slope", 0.9, {})
        >>> r.to_dict()["recovery_rows"]
        365
    """

    gain_per_row: float
    mean_per_row: float
    lower: float
    rows: int
    units: str
    method: str
    confidence: float
    fit: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "recoverable_gain_per_row": self.gain_per_row,
            "recovery_mean_per_row": self.mean_per_row,
            "recovery_lower_bound": self.lower,
            "recovery_rows": self.rows,
            "recovery_units": self.units,
            "recovery_method": self.method,
            "recovery_confidence": self.confidence,
            **{f"recovery_fit_{k}": v for k, v in self.fit.items()},
        }


@dataclass(frozen=True)
class Signals:
    """Everything :func:`~mlcycle.loop.policy.decide` may look at, at time ``now``.

    ``last_retrain_at`` is the start of the last loop retrain (or the champion's
    registration when the loop never retrained); ``recent_retrains`` the start times of
    retrains, for the budget; ``new_rows`` the valid rows landed since the champion's
    training data; ``drift_streak`` how many of the latest windows in a row had a drift
    alert; ``rows_per_day`` the traffic rate, for the cost rule's horizon; ``manual_reason``
    a pending ``mlcycle loop trigger --reason``; ``recovery`` what a retrain is estimated
    to recover per row (:func:`mlcycle.loop.recovery.estimate_recovery`; None until two
    labelled windows of the champion's traffic exist).
    """

    now: datetime
    holdout: HoldoutSignal
    windows: tuple[WindowSignal, ...] = ()
    last_retrain_at: datetime | None = None
    recent_retrains: tuple[datetime, ...] = ()
    new_rows: int = 0
    drift_streak: int = 0
    rows_per_day: float = 0.0
    manual_reason: str | None = None
    recovery: RecoverySignal | None = None


@dataclass(frozen=True)
class Decision:
    """The policy's answer: retrain or not, which trigger, and why in one sentence.

    ``details`` holds the numbers behind it (expected gain, cost, budget left...), stored
    with the loop run so a person can check the call.
    """

    retrain: bool
    trigger: TriggerName | None
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
