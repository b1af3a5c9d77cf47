"""Who owns a scratch folder: its name carries the writer's pid and host.

A writer killed with SIGKILL never cleans up after itself, so a staging folder
(``stage-…``) or a landing folder (``.tmp-…``) would stay forever. Each one is
named ``<prefix><pid>-<host tag>-<random>``; a sweep removes those of this host
whose pid is no longer alive, and never a live writer's. A folder of another
host (a shared artifacts folder) or of an older mlcycle (no pid in the name) is
only removed once it is older than ``stale_seconds``.

Example:
    >>> folder = Path(tempfile.mkdtemp(prefix="stage-" + owner_tag() + "-", dir=root))
    >>> sweep_orphans(root, "stage-")   # a live owner's folder stays
    0
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from pathlib import Path

HOST = socket.gethostname()
# The host name hashed, so the folder name stays short and free of separators.
HOST_TAG = hashlib.sha1(HOST.encode()).hexdigest()[:8]
STALE_SECONDS = 24 * 3600


def owner_tag() -> str:
    """``<pid>-<host tag>``: what a scratch folder's name says about its writer."""
    return f"{os.getpid()}-{HOST_TAG}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 probes it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def orphaned(name: str, prefix: str, *, age: float, stale_seconds: float = STALE_SECONDS) -> bool:
    """Whether the scratch folder ``name`` belongs to no live writer (module docs)."""
    parts = name.removeprefix(prefix).split("-")
    if len(parts) >= 3 and parts[0].isdigit() and parts[1] == HOST_TAG:
        return not pid_alive(int(parts[0]))
    return age > stale_seconds


def sweep_orphans(root: Path, prefix: str, *, stale_seconds: float = STALE_SECONDS) -> int:
    """Remove the ``prefix…`` folders under ``root`` that no live writer owns; return how many."""
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if not entry.name.startswith(prefix):
            continue
        try:
            age = time.time() - entry.stat().st_mtime
        except FileNotFoundError:  # its owner finished meanwhile
            continue
        if orphaned(entry.name, prefix, age=age, stale_seconds=stale_seconds):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed
