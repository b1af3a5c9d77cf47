"""Errors a person can act on.

Every error mlcycle raises on purpose carries three parts — what went wrong, why,
and what to do — and the CLI prints them as ``mlcycle: what — why — what to do``
with exit code 2 for bad input and 1 for an internal failure.

Example:
    >>> raise BadInput("target column 'delay' not found", "the data has no such column",
    ...                "set problem.target to one of: arr_delay, dep_delay")
"""

from __future__ import annotations


class MlcycleError(Exception):
    """Base class: an error with a what / why / what-to-do message."""

    exit_code = 1

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        self.what = what
        self.why = why
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return " — ".join(part for part in (self.what, self.why, self.fix) if part)

    def to_dict(self) -> dict[str, str]:
        return {"error": self.what, "why": self.why, "fix": self.fix}


class BadInput(MlcycleError):
    """The user's spec, data, arguments or request are wrong (exit code 2)."""

    exit_code = 2


class NotFound(BadInput):
    """A named thing (model, version, artifact, file) does not exist."""


class StepFailed(MlcycleError):
    """A pipeline step failed; carries the step's name."""

    def __init__(self, step: str, cause: BaseException) -> None:
        self.step = step
        self.cause = cause
        if isinstance(cause, MlcycleError):
            self.exit_code = cause.exit_code
            super().__init__(f"step '{step}' failed: {cause.what}", cause.why, cause.fix)
        else:
            super().__init__(
                f"step '{step}' failed: {type(cause).__name__}: {cause}",
                "an unexpected error inside the step",
                "fix the cause and run again; finished steps are reused from cache",
            )


class StorageUnavailable(BadInput):
    """The metadata database or the object storage cannot be reached, refused the request,
    or lacks its bucket (exit code 2: the environment needs fixing, not mlcycle).

    Example:
        >>> raise StorageUnavailable("cannot write an artifact to s3://team/art",
        ...                          "the bucket does not exist", "create it, then run again")
    """
