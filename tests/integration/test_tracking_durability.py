"""Nothing logged is lost: normal exit, an exception, SIGTERM, and four processes at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa

from mlcycle.store import Store
from mlcycle.train.tracking import query


def _python(code: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(base: Path) -> list[query.RunView]:
    store = Store.open(base)
    try:
        return query.search_runs(store.engine)
    finally:
        store.close()


def _points(base: Path, run_id: str, key: str) -> list[int]:
    store = Store.open(base)
    try:
        return [s for s, _, _ in query.metric_history(store.engine, run_id, key)]
    finally:
        store.close()


def test_normal_exit_without_end_run_keeps_everything(tmp_path: Path) -> None:
    proc = _python(
        """
        import mlcycle
        run = mlcycle.start_run(name="no-end")
        for i in range(20000):
            mlcycle.log_metric("i", i, step=i)
        mlcycle.log_params({"p": 1})
        """,
        tmp_path,
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    [run] = _runs(tmp_path)
    assert run.info["status"] == "finished" and run.params == {"p": "1"}
    assert _points(tmp_path, run.id, "i") == list(range(20000))


def test_exception_marks_the_run_failed_and_keeps_its_points(tmp_path: Path) -> None:
    proc = _python(
        """
        import mlcycle
        with mlcycle.start_run(name="crash"):
            for i in range(5000):
                mlcycle.log_metric("i", i, step=i)
            raise RuntimeError("training diverged")
        """,
        tmp_path,
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "training diverged" in err
    [run] = _runs(tmp_path)
    assert run.info["status"] == "failed"
    assert _points(tmp_path, run.id, "i") == list(range(5000))


def test_sigterm_mid_logging_loses_nothing(tmp_path: Path) -> None:
    proc = _python(
        """
        import atexit, pathlib, sys
        last = [-1]
        # Registered before mlcycle's own handler, so it runs after the final flush.
        atexit.register(lambda: pathlib.Path("last.txt").write_text(str(last[0])))
        import mlcycle
        with mlcycle.start_run(name="terminated"):
            i = 0
            while True:
                mlcycle.log_metric("i", i, step=i)
                last[0] = i
                if i == 3000:
                    print("ready", flush=True)
                i += 1
        """,
        tmp_path,
    )
    ready = proc.stdout.readline() if proc.stdout is not None else ""
    assert ready.strip() == "ready"
    # Still logging when the signal lands, or the test would prove nothing about SIGTERM.
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    last = int((tmp_path / "last.txt").read_text())
    [run] = _runs(tmp_path)
    assert run.info["status"] == "killed"
    points = _points(tmp_path, run.id, "i")
    # The signal may land between log_metric(i) and `last = i`: then i is kept too.
    assert points == list(range(len(points))) and len(points) - 1 in (last, last + 1)
    assert last >= 3000


def test_four_processes_logging_to_one_sqlite_store(tmp_path: Path) -> None:
    code = """
        import sys
        from pathlib import Path
        from mlcycle.store import Store
        from mlcycle.train.tracking import Tracker
        # Small batches, so the four writers interleave many transactions.
        tracker = Tracker(Store.open(Path(".")), flush_interval=0.01, max_pending=97)
        with tracker.start_run(f"worker-{sys.argv[1]}") as run:
            run.log_params({"worker": sys.argv[1]})
            for i in range(3000):
                run.log_metric("i", i, step=i)
                if i % 500 == 0:
                    run.set_tags({"progress": i})
        """
    Store.open(tmp_path).close()  # migrate once, so the workers race on data, not schema
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(w)],
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    runs = _runs(tmp_path)
    assert sorted(r.params["worker"] for r in runs) == ["0", "1", "2", "3"]
    for run in runs:
        assert run.info["status"] == "finished"
        assert run.tags["progress"] == "2500"
        assert _points(tmp_path, run.id, "i") == list(range(3000))
    store = Store.open(tmp_path)
    with store.engine.connect() as conn:
        total = conn.execute(sa.text("SELECT sum(n) FROM run_metric_blocks")).scalar_one()
        latest = conn.execute(sa.text("SELECT step FROM run_latest_metrics")).scalars().all()
    store.close()
    assert total == 4 * 3000
    assert latest == [2999] * 4
