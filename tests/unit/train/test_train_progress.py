"""The tuning progress: plain lines off a terminal, a Rich display on one."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_fixtures import CANCER, auc, cancer

from mlcycle.spec import Candidate, Tuning
from mlcycle.train.progress import TuningProgress, clock
from mlcycle.train.tuning import TrialReport, tune


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _report(number: int, value: float | None, state: str = "complete") -> TrialReport:
    return TrialReport(number, {}, value, state, [], 0.1)


def test_clock_shows_seconds_as_time() -> None:
    assert clock(83) == "0:01:23" and clock(2 * 3600 + 5) == "2:00:05" and clock(0) == "0:00:00"


def test_plain_lines_first_and_last_with_every_figure() -> None:
    out = io.StringIO()
    with TuningProgress(
        "hgb", metric="roc_auc", trials=5, seconds=100, stream=out, every=3600
    ) as progress:
        for number, value, state in [
            (0, 0.7, "complete"),
            (1, 0.9, "complete"),
            (2, None, "pruned"),
            (3, None, "fail"),
            (4, 0.8, "complete"),
        ]:
            progress.trial(_report(number, value, state))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first trial, then the end (the rest fall within `every`)
    assert lines[0].startswith("tuning hgb: 1/5 trials, best roc_auc 0.7 (#0), 0:00:")
    assert lines[-1].startswith(
        "tuning hgb: 4/5 trials (1 pruned, 1 failed), best roc_auc 0.9 (#1)"
    )
    assert lines[-1].endswith("of 0:01:40")


def test_lower_is_better_and_a_resumed_best() -> None:
    out = io.StringIO()
    with TuningProgress(
        "lr", metric="rmse", trials=4, greater_is_better=False, resumed=2, best=(3.0, 1), stream=out
    ) as progress:
        progress.trial(_report(2, 5.0))
        progress.trial(_report(3, 2.5))
    assert out.getvalue().splitlines()[-1].startswith("tuning lr: 4/4 trials, best rmse 2.5 (#3)")


def test_disabled_prints_nothing() -> None:
    out = io.StringIO()
    with TuningProgress("lr", trials=1, enabled=False, stream=out) as progress:
        progress.trial(_report(0, 1.0))
    assert out.getvalue() == ""


def test_a_terminal_gets_the_rich_display() -> None:
    out = Terminal()
    with TuningProgress("hgb", metric="auc", seconds=90, stream=out) as progress:
        progress.trial(_report(0, 0.75))
        progress.trial(_report(1, 0.8))
    text = out.getvalue()
    assert "\x1b[" in text  # drawn with terminal control codes, not plain lines
    assert "2 trials" in text and "best auc 0.8 (#1)" in text and "0:01:30" in text


def test_tune_reports_its_trials(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    train, valid, schema = cancer()
    candidate = Candidate.model_validate(
        {
            "name": "lr",
            "estimator": "logistic_regression",
            "search": {"C": {"type": "log", "low": 0.01, "high": 1}},
        }
    )
    result = tune(
        train,
        candidate,
        schema=schema,
        problem=CANCER,
        seed=0,
        metric=auc,
        greater_is_better=True,
        tuning=Tuning(trials=3),
        valid=valid,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        study_name="progress",
        progress=True,
        metric_name="roc_auc",
    )
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"tuning lr: 3/3 trials, best roc_auc {result.best_value:.4g}")
