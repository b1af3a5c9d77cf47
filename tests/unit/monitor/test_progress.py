"""Progress of long monitoring work: plain lines off a terminal, a Rich display on one."""

from __future__ import annotations

import io

from rich.console import Console

from mlcycle.cli.monitor_progress import ProgressReporter


def plain() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=200), out


def test_plain_lines_show_first_last_and_uncounted_steps_only_when_fast() -> None:
    console, out = plain()
    with ProgressReporter(console, every=3600.0) as progress:
        assert not progress.live
        for i in range(10):
            progress(f"window {i}", i, 10)
        progress("windows done", 10, 10)
        progress("joining labels")
        progress("2013-07", 0, 7, task="replay")
    lines = out.getvalue().splitlines()
    assert lines == [
        "monitor: window 0 (0/10)",
        "monitor: window 1 (1/10)",
        "monitor: windows done (10/10)",
        "monitor: joining labels",
        "replay: 2013-07 (0/7)",
    ]


def test_plain_lines_are_periodic_not_silenced() -> None:
    console, out = plain()
    progress = ProgressReporter(console, every=0.0)
    for i in range(5):
        progress("window", i, 5)
    assert len(out.getvalue().splitlines()) == 5


def test_disabled_reporter_prints_nothing() -> None:
    console, out = plain()
    with ProgressReporter(console, enabled=False) as progress:
        progress("window", 1, 2)
    assert out.getvalue() == ""


def test_terminal_gets_a_rich_display() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with ProgressReporter(console) as progress:
        assert progress.live
        progress("window 2013-07", 0, 6)
        progress("window 2013-08", 1, 6)
        progress("2013-07", 0, 7, task="replay")
        assert len(progress._tasks) == 2
    assert "monitor:" in out.getvalue()


def test_a_step_without_a_count_pulses_instead_of_showing_the_last_total() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with ProgressReporter(console) as progress:
        progress("window 2013-07", 0, 6)
        progress("joining labels")
        (task,) = progress._bar.tasks
        assert task.total is None and task.fields["count"] == ""
