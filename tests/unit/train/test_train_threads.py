"""Training's OpenMP threads follow the cores the rest of the machine leaves free.

With another process on one of two cores, OpenMP's spinning threads stalled
each other (a flights `mlcycle run` 15-16 s against 8.5 s capped to the free
core): ``train/threads.py`` measures the idle share of ``/proc/stat`` when a
pipeline run starts and caps OpenMP (and BLAS) at it; ``OMP_NUM_THREADS`` set
by the user is left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from threadpoolctl import threadpool_info

from mlcycle.train import threads


def stat(idle: int, busy: int) -> str:
    # user nice system idle iowait irq softirq steal guest guest_nice
    return f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"


def readings(*texts: str) -> Any:
    it: Iterator[str] = iter(texts)
    return lambda: next(it)


def test_cpu_times_reads_the_all_cpus_line() -> None:
    assert threads.cpu_times(lambda: "cpu  10 1 5 80 4 0 0 0 0 0\n") == (84, 100)
    assert threads.cpu_times(lambda: "intr 1 2 3\n") is None
    assert threads.cpu_times(lambda: "") is None
    assert threads.cpu_times(lambda: "cpu  x y\n") is None


def test_free_cores_is_the_idle_share_of_the_cpus() -> None:
    assert threads.free_cores((0, 0), (50, 100), cpus=2) == 1.0
    assert threads.free_cores((0, 0), (100, 100), cpus=4) == 4.0
    assert threads.free_cores((5, 9), (5, 9), cpus=2) is None  # no time passed


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "SAMPLE_SECONDS", 0.0)


@pytest.mark.parametrize(
    ("idle_share", "expected"),
    [(1.0, 2), (0.5, 1), (0.7, 1), (0.8, 2), (0.0, 1)],
)
def test_threads_are_the_free_cores_at_least_one(
    two_cores: None, idle_share: float, expected: int
) -> None:
    idle = int(1000 * idle_share)
    read = readings(stat(0, 0), stat(idle, 1000 - idle))
    assert threads.openmp_threads(read) == expected


def test_a_users_omp_num_threads_is_theirs(
    two_cores: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.openmp_threads(readings(stat(0, 0), stat(0, 1000))) is None


def test_without_proc_stat_nothing_changes(two_cores: None) -> None:
    def missing() -> str:
        raise FileNotFoundError("/proc/stat")

    assert threads.openmp_threads(missing) is None


def openmp_threads_now() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}


def test_fitting_threads_caps_openmp_inside_and_restores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sklearn.utils._openmp_helpers  # noqa: F401  (loads the OpenMP runtime)

    before = openmp_threads_now()
    monkeypatch.setattr(threads, "openmp_threads", lambda: 1)
    with threads.fitting_threads() as cap:
        assert cap == 1 and openmp_threads_now() == {1}
    assert openmp_threads_now() == before
    monkeypatch.setattr(threads, "openmp_threads", lambda: None)
    with threads.fitting_threads() as cap:
        assert cap is None and openmp_threads_now() == before
