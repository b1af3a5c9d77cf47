"""Interrupted writes are swept: a folder whose writer got SIGKILL goes, a live one stays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlcycle.data.landing import RawRoot, tmp_name
from mlcycle.store import Store


def _killed_writer(base: Path, code: str) -> Path:
    """Run ``code`` (printing the folder it fills) in a child, SIGKILL it; return the folder."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(code) + "\nprint(folder, flush=True)\nimport time\ntime.sleep(600)\n",
        ],
        cwd=base,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    folder = Path(proc.stdout.readline().strip())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: the pid is gone, as after a real crash
    assert proc.returncode == -signal.SIGKILL
    assert folder.is_dir()
    return folder


def test_a_staging_folder_of_a_killed_writer_is_swept_on_the_next_open(tmp_path: Path) -> None:
    dead = _killed_writer(
        tmp_path,
        """
        from pathlib import Path
        from mlcycle.store import Store
        folder = Store.open(Path(".").resolve()).blobs.new_staging()
        (folder / "model.joblib").write_bytes(b"half a bundle")
        """,
    )
    store = Store.open(tmp_path)  # this process is alive: its own folder must stay
    live = store.blobs.new_staging()
    try:
        assert not dead.exists()
        Store.open(tmp_path).close()
        assert live.is_dir()
    finally:
        store.close()


def test_a_landing_folder_of_a_killed_ingest_is_swept_by_the_next_ingest(tmp_path: Path) -> None:
    dead = _killed_writer(
        tmp_path,
        """
        from pathlib import Path
        from mlcycle.data.landing import RawRoot, tmp_name
        from mlcycle.store import Store
        parent = Path(RawRoot(Store.open(Path(".").resolve())).root) / "main"
        parent.mkdir(parents=True, exist_ok=True)
        folder = parent / tmp_name()
        folder.mkdir()
        (folder / "part-0.parquet").write_bytes(b"torn")
        """,
    )
    store = Store.open(tmp_path)
    try:
        raw = RawRoot(store)
        live = Path(raw.root) / "main" / tmp_name()
        live.mkdir()
        old_style = Path(raw.root) / "main" / ".tmp-0123abcd"  # an older mlcycle's, fresh
        old_style.mkdir()
        assert raw.sweep("main") == 1  # at once, not an hour later
        assert not dead.exists() and live.is_dir() and old_style.is_dir()
        hour_ago = time.time() - 3700
        os.utime(old_style, (hour_ago, hour_ago))
        assert raw.sweep("main") == 1 and not old_style.exists()
    finally:
        store.close()
