"""SIGTERM handling: a swallowed SystemExit is raised again, a held lock is never left behind."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlcycle.store import Store
from mlcycle.train.tracking import Tracker, process


@pytest.fixture
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(process, "signalled", None)
    monkeypatch.setattr(process, "exiting", False)
    yield


def test_a_swallowed_sigterm_stops_the_next_logging_call_without_losing_it(
    tmp_path: Path, clean_state: None
) -> None:
    tracker = Tracker(Store.open(tmp_path), flush_interval=60)
    run = tracker.start_run("swallowed")
    # As if the handler's SystemExit had been raised inside a GC callback and ignored.
    process.signalled = signal.SIGTERM
    with pytest.raises(SystemExit) as stopped:
        run.log_metric("loss", 0.5, step=0)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert tracker.pending() > 0  # the point was buffered before the exit
    # While the exit unwinds (an except/finally/__exit__), logging goes on normally.
    try:
        raise SystemExit(143)
    except SystemExit:
        run.log_metric("loss", 0.4, step=1)
    process.signalled = None
    tracker.close()
    from mlcycle.train.tracking import query

    assert [s for s, _, _ in query.metric_history(tracker.engine, run.id, "loss")] == [0, 1]


def test_the_handler_waits_while_the_tracker_may_hold_a_lock(
    clean_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(process.threading.Timer, "start", lambda self: started.append(self))
    inside = SimpleNamespace(f_globals={"__name__": "mlcycle.train.tracking.writer"})
    process._on_sigterm(signal.SIGTERM, inside)  # type: ignore[arg-type]
    assert process.signalled == signal.SIGTERM and len(started) == 1  # delivered again later
    outside = SimpleNamespace(f_globals={"__name__": "__main__"})
    with pytest.raises(SystemExit):
        process._on_sigterm(signal.SIGTERM, outside)  # type: ignore[arg-type]


def test_a_second_signal_during_the_exit_flush_is_ignored(clean_state: None) -> None:
    process.exiting = True
    process._on_sigterm(signal.SIGTERM, sys._getframe())  # returns: nothing raised
    assert process.signalled is None
