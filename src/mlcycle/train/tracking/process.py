"""What a run records about the process it ran in, and the process hooks of the tracker.

The host, the git commit and dirty flag, and the library versions are looked up
once per process; SIGTERM is turned into ``SystemExit`` so a killed job unwinds
like an exception and the tracker's ``atexit`` flush still runs.

Example:
    >>> sha, dirty = git_state(os.getcwd())
    >>> library_versions()["python"]
    '3.11.7'
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from functools import cache
from importlib import metadata
from types import FrameType

from mlcycle.gitinfo import git_state as _git_state

TRACKED_LIBRARIES = ("mlcycle", "numpy", "pandas", "scikit-learn", "optuna", "lightgbm")


@cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries a model depends on (absent ones are left out)."""
    found = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in TRACKED_LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


# A tracked process asks once: runs started later in it share the answer.
git_state = cache(_git_state)


def split_git_sha(value: str | None) -> tuple[str | None, bool | None]:
    """``Project.git_sha`` ("<sha>" or "<sha>-dirty") as (sha, dirty)."""
    if value is None:
        return None, None
    return value.removesuffix("-dirty"), value.endswith("-dirty")


HOST = socket.gethostname()
_sigterm_installed = False

#: The signal received, once SIGTERM arrived; None before.
signalled: int | None = None
# Set when the final flush starts: from then on a repeated signal is ignored.
exiting = False
# Modules whose frames may hold a tracker lock (see _on_sigterm).
_LOCKING_MODULES = frozenset({"mlcycle.train.tracking", "mlcycle.train.tracking.writer"})


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind like an exception: `with` blocks mark their runs killed and atexit
    # writes the buffers. 128 + 15 is the shell's code for "terminated".
    global signalled
    if exiting or isinstance(sys.exc_info()[1], SystemExit):
        return  # already on the way out: let the flush finish
    signalled = signum
    if frame is not None and frame.f_globals.get("__name__") in _LOCKING_MODULES:
        # Raising between a lock's acquire and its `with` block would leave the
        # lock held (CPython issue 29988) and the exit flush waiting forever:
        # deliver the signal again in 10 ms, outside the tracker's own code.
        timer = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    raise SystemExit(128 + signum)


def exit_if_signalled() -> None:
    """Raise the SystemExit of a SIGTERM that was swallowed on its way out.

    A signal handler's exception raised inside a weakref callback or ``__del__``
    (garbage collection runs them at any allocation) is printed and ignored by
    Python; the tracker calls this after buffering each call, so such a
    process still stops at its next logging call instead of running on.
    """
    if signalled is not None and not exiting and not isinstance(sys.exc_info()[1], SystemExit):
        raise SystemExit(128 + signalled)


def install_sigterm() -> None:
    """Turn SIGTERM into SystemExit, only where nobody else has claimed SIGTERM."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main interpreter
        return
    _sigterm_installed = True
