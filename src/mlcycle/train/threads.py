"""How many OpenMP threads training uses: the cores free right now, not every core.

scikit-learn's HistGradientBoosting (and LightGBM) start one OpenMP thread per
core, and their threads spin while they wait for each other. On a machine
where another process holds a core, the thread that shares it stalls the
others at every step: a 150,000-row fit took 2.5 s with a busy-loop on one of
two cores against 0.66 s idle, and 1.0 s with one thread; `mlcycle run` on
the flights sample 17.1 s against 8.0 s. So a pipeline run measures the cores
left idle by the rest of the machine before its first step that computes (the
``cpu`` line of ``/proc/stat``, twice, 50 ms apart) and caps OpenMP and BLAS
at that many, at least one, for the rest of the run (fitting, scoring and
evaluating all run OpenMP). ``OMP_NUM_THREADS``
set by the user is their choice and is left alone; where ``/proc/stat`` does
not exist (not Linux) nothing changes.

Written here because neither threadpoolctl nor the estimators look at what
else the machine is doing.

Example:
    >>> with fitting_threads():
    ...     pipeline.fit(X, y)
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger("mlcycle.train")

SAMPLE_SECONDS = 0.05
_STAT = Path("/proc/stat")


def cpu_times(read: Callable[[], str] | None = None) -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from ``/proc/stat``; ``None`` where it is unreadable.

    Example:
        >>> cpu_times(lambda: "cpu  10 0 5 80 5 0 0 0 0 0\\n")
        (85, 100)
    """
    try:
        text = read() if read is not None else _STAT.read_text()
        fields = text.splitlines()[0].split()
        if fields[0] != "cpu":
            return None
        # user nice system idle iowait irq softirq steal (guest time is inside user/nice)
        values = [int(v) for v in fields[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    idle = values[3] + values[4]
    return idle, sum(values)


def free_cores(before: tuple[int, int], after: tuple[int, int], cpus: int) -> float | None:
    """How many of ``cpus`` were idle between two :func:`cpu_times` readings.

    Example:
        >>> free_cores((85, 100), (135, 200), cpus=2)   # half the time idle
        1.0
    """
    total = after[1] - before[1]
    if total <= 0:
        return None
    return cpus * (after[0] - before[0]) / total


def openmp_threads(read: Callable[[], str] | None = None) -> int | None:
    """The OpenMP threads to train with now, or ``None`` to leave the default alone.

    Example:
        >>> openmp_threads()   # one of two cores busy elsewhere
        1
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    first = cpu_times(read)
    if first is None or not cores:
        return None
    time.sleep(SAMPLE_SECONDS)
    second = cpu_times(read)
    free = free_cores(first, second, os.cpu_count() or cores) if second is not None else None
    if free is None:
        return None
    return max(1, min(cores, int(free + 0.5)))


@contextlib.contextmanager
def fitting_threads() -> Iterator[int | None]:
    """Cap OpenMP at the free cores for the ``with`` block; yields the cap (``None``: none).

    Example:
        >>> with fitting_threads() as threads:
        ...     model.fit(X, y)
    """
    threads = openmp_threads()
    if threads is None:
        yield None
        return
    # The limit reaches the OpenMP runtimes loaded when it is set: load scikit-learn's.
    import sklearn.utils._openmp_helpers  # noqa: F401
    from threadpoolctl import threadpool_limits

    logger.info("training with %d OpenMP thread(s): the cores free on this machine", threads)
    with threadpool_limits(limits=threads):  # OpenMP and BLAS (NumPy, SciPy) alike
        yield threads
