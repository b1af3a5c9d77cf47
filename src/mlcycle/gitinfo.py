"""The git commit a piece of work came from: shared by the pipeline's runs and tracked runs.

Example:
    >>> sha, dirty = git_state(".")
    >>> sha is None or len(sha) == 40
    True
"""

from __future__ import annotations

import subprocess


def git_state(folder: str) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository holding ``folder``; (None, None) outside one.

    ``dirty`` counts changes to tracked files only: an untracked scratch file
    does not change what the committed code computes. Not cached: a
    long-lived process (a notebook, a test session) may commit in between.
    """
    try:
        sha = _git(folder, "rev-parse", "HEAD")
        dirty = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha, bool(dirty)


def _git(folder: str, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()
