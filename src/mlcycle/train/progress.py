"""Progress of a tuning on stderr: a Rich display on a terminal, plain lines otherwise.

On a terminal one line per candidate shows the trials done against the budget
(a bar), the best value so far with its trial, the elapsed time and, when the
budget is in seconds, that budget as a time. Elsewhere (CI logs, pipes, files)
a plain line is written at most every ``every`` seconds, plus the first and the
last. Updates happen once per trial and the display redraws twice a second, so
the tuning itself is not slowed (benchmarks/bench_tuning.py runs with it on).

Example:
    >>> with TuningProgress("hgb", metric="roc_auc", trials=30, seconds=600) as progress:
    ...     progress.trial(report)  # after each trial, from any thread
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import IO, Any

#: Seconds between two plain lines (the first and the last always print).
PLAIN_EVERY = 10.0


def clock(seconds: float) -> str:
    """Seconds as H:MM:SS (e.g. 83 -> "0:01:23")."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class TuningProgress:
    """Counts the trials of one candidate's tuning and shows them (see the module doc)."""

    def __init__(
        self,
        name: str,
        *,
        metric: str = "score",
        trials: int | None = None,
        seconds: float | None = None,
        greater_is_better: bool = True,
        resumed: int = 0,
        best: tuple[float, int] | None = None,
        enabled: bool = True,
        stream: IO[str] | None = None,
        every: float = PLAIN_EVERY,
    ) -> None:
        self.name = name
        self.metric = metric
        self.trials = trials
        self.seconds = seconds
        self.greater = greater_is_better
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.done = resumed  # finished trials, counting those of an earlier, resumed tuning
        self.pruned = 0
        self.failed = 0
        self.best = best  # (value, trial number)
        self._lock = threading.Lock()  # parallel trials report from several threads
        self._started = time.monotonic()
        self._last_line = float("-inf")
        self._live: Any = None
        self._task: Any = None

    # --- what is shown ---------------------------------------------------------------

    def counts(self) -> str:
        """E.g. "12/30 trials (2 pruned)"."""
        text = f"{self.done}/{self.trials} trials" if self.trials else f"{self.done} trials"
        extra = [f"{n} {what}" for n, what in ((self.pruned, "pruned"), (self.failed, "failed"))]
        extra = [e for e in extra if not e.startswith("0 ")]
        return text + (f" ({', '.join(extra)})" if extra else "")

    def best_text(self) -> str:
        if self.best is None:
            return f"best {self.metric} -"
        return f"best {self.metric} {self.best[0]:.4g} (#{self.best[1]})"

    def budget_text(self) -> str:
        """The time budget as shown after the elapsed time ("/0:10:00"), or ""."""
        return f"/{clock(self.seconds)}" if self.seconds else ""

    def line(self) -> str:
        """The plain line: every figure of the live display, in words."""
        elapsed = clock(time.monotonic() - self._started)
        budget = f" of {clock(self.seconds)}" if self.seconds else ""
        return f"tuning {self.name}: {self.counts()}, {self.best_text()}, {elapsed}{budget}"

    # --- updates ---------------------------------------------------------------------

    def trial(self, report: Any) -> None:
        """Count a finished trial (a ``TrialReport``: number, value, state)."""
        with self._lock:
            if report.state == "complete":
                self.done += 1
                value = report.value
                if value is not None and (
                    self.best is None
                    or (value > self.best[0] if self.greater else value < self.best[0])
                ):
                    self.best = (float(value), int(report.number))
            elif report.state == "pruned":
                self.done += 1
                self.pruned += 1
            else:
                self.failed += 1
            self._show(final=False)

    def _show(self, *, final: bool) -> None:
        if not self.enabled:
            return
        if self._live is not None:
            elapsed = time.monotonic() - self._started
            completed = self.done if self.trials else min(elapsed, self.seconds or elapsed)
            self._live.update(
                self._task,
                completed=completed,
                counts=self.counts(),
                best=self.best_text(),
            )
            return
        now = time.monotonic()
        if final or self._last_line == float("-inf") or now - self._last_line >= self.every:
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    # --- life cycle ------------------------------------------------------------------

    def __enter__(self) -> TuningProgress:
        self._started = time.monotonic()
        if self.enabled and _is_terminal(self.stream):
            from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
            from rich.text import Text

            budget = self.budget_text()

            class Clock(ProgressColumn):
                """Elapsed time, then the time budget: "0:01:23/0:10:00"."""

                def render(self, task: Task) -> Text:
                    elapsed = clock(task.elapsed or 0.0)
                    return Text(elapsed + budget, style="progress.elapsed", no_wrap=True)

            self._live = Progress(
                TextColumn("tuning [bold]{task.description}[/]"),
                BarColumn(bar_width=8),  # the figures matter more on 80 columns
                TextColumn("{task.fields[counts]}"),
                TextColumn("{task.fields[best]}"),
                Clock(),
                console=_console(self.stream),
                refresh_per_second=2,  # the elapsed time ticks; trials update it too
                # Replaced by one summary line at the end (below): a display nested
                # in another one would vanish with it.
                transient=True,
            )
            self._live.__enter__()
            # Without a trial budget the bar fills with the time budget.
            total = self.trials or self.seconds
            self._task = self._live.add_task(
                self.name,
                total=total,
                completed=self.done if self.trials else 0,
                counts=self.counts(),
                best=self.best_text(),
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            if self._live is not None:
                live, self._live = self._live, None
                live.__exit__(exc_type, exc, tb)
                if self.enabled:
                    live.console.print(self.line(), highlight=False, markup=False)
            else:
                self._show(final=True)


def _console(stream: IO[str]) -> Any:
    """Rich's global console when it is showing a live display (e.g. the CLI's status
    while ``mlcycle run`` runs), so the tuning nests inside it instead of fighting it
    for the same terminal line; else a console on ``stream``."""
    from rich import get_console
    from rich.console import Console

    shared = get_console()
    if getattr(shared, "_live_stack", None):  # Rich ≥ 14 nests live displays
        return shared
    return Console(file=stream)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a file
        return False


__all__ = ["PLAIN_EVERY", "TuningProgress", "clock"]
