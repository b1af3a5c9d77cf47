"""Progress of long monitoring work on stderr: a Rich display on a terminal, plain lines
otherwise (CI logs, pipes), so neither a person nor a log file is left in the dark.

Example:
    >>> with ProgressReporter(err_console) as progress:
    ...     for i, key in enumerate(keys):
    ...         progress(f"window {key}", i + 1, len(keys))
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console

#: Seconds between two plain lines of one task (first and last step always print).
PLAIN_EVERY = 2.0


class ProgressReporter:
    """Callable ``(text, done=None, total=None, task="monitor")`` for the monitor's progress hook.

    On a terminal, each task is one line of a transient Rich progress display
    (spinner, text, bar — pulsing when the step has no count —, done/total,
    elapsed). Otherwise each call may print
    ``task: text (done/total)``: always the first and last step of a task and
    any step without a count, else at most one line per ``every`` seconds.
    ``enabled=False`` swallows everything (``--json`` keeps stderr quiet too).
    """

    def __init__(
        self, console: Console, *, enabled: bool = True, every: float = PLAIN_EVERY
    ) -> None:
        self.console = console
        self.enabled = enabled
        self.every = every
        self.live = enabled and console.is_terminal
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._last: dict[str, float] = {}

    def __enter__(self) -> ProgressReporter:
        if self.live:
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("[dim]{task.fields[name]}:[/] {task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
            self._bar = None

    def __call__(
        self, text: str, done: int | None = None, total: int | None = None, task: str = "monitor"
    ) -> None:
        if not self.enabled:
            return
        count = f"{done}/{total}" if done is not None and total is not None else ""
        if self._bar is not None:
            if task not in self._tasks:
                self._tasks[task] = self._bar.add_task(text, total=total, name=task, count=count)
            tid = self._tasks[task]
            self._bar.update(tid, description=text, completed=done or 0, count=count)
            # update() keeps the old total when given None; a step without a count
            # must show a pulsing bar, not the last step's "0 of N".
            for shown in self._bar.tasks:
                if shown.id == tid:
                    shown.total = total
            return
        now = time.monotonic()
        edge = done is None or total is None or done <= 1 or done >= total
        if not edge and now - self._last.get(task, float("-inf")) < self.every:
            return
        self._last[task] = now
        suffix = f" ({count})" if count else ""
        self.console.print(f"{task}: {text}{suffix}", highlight=False, markup=False)


__all__ = ["PLAIN_EVERY", "ProgressReporter"]
