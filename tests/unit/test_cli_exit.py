"""The `mlcycle` script leaves with ``os._exit`` once the command is done: nothing lost.

What the interpreter's own exit would have done that matters must still happen
before: non-daemon threads joined (an executor's queued work finished),
exit handlers run, output flushed, the command's status kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r"""
import atexit, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from mlcycle.cli.main import leave

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))

def slow(name):
    time.sleep(0.3)
    (out / name).write_text("done")

threading.Thread(target=slow, args=("thread",)).start()
pool = ThreadPoolExecutor(1)
pool.submit(slow, "queued-1")
pool.submit(slow, "queued-2")
for _ in range(1000):  # small writes: the last few KB wait in the buffer
    sys.stdout.write("x" * 200)
leave(eval(sys.argv[2]))
raise AssertionError("leave() returned")
"""
# Buffered output, as a user's shell gives a pipe: what os._exit would drop unflushed.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


@pytest.mark.parametrize(("code", "status"), [("0", 0), ("None", 0), ("3", 3), ("256", 0)])
def test_leave_joins_threads_runs_exit_handlers_and_keeps_the_status(
    tmp_path: Path, code: str, status: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), code],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )
    assert done.returncode == status, done.stderr
    assert done.stdout == "x" * 200_000
    assert "leave() returned" not in done.stderr
    for name in ("atexit", "thread", "queued-1", "queued-2"):
        assert (tmp_path / name).read_text() in ("ran", "done"), name


def test_leave_with_a_message_prints_it_and_exits_1(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), "'mlcycle: cannot go on'"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "mlcycle: cannot go on"


def test_the_script_keeps_a_commands_error_status(tmp_path: Path) -> None:
    mlcycle = Path(sys.executable).with_name("mlcycle")
    done = subprocess.run(
        [str(mlcycle), "models", "list", "--spec", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "none.yaml" in done.stderr
