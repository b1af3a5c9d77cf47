"""mlcycle: one tool for the whole life of a tabular ML model.

Example:
    >>> import mlcycle
    >>> report = mlcycle.Project.load("mlcycle.yaml").run()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcycle.version import __version__

if TYPE_CHECKING:
    from mlcycle.pipeline.project import Project


def __getattr__(name: str) -> Any:
    # Imported lazily so `import mlcycle` stays cheap for the CLI and the server.
    if name == "Project":
        from mlcycle.pipeline.project import Project

        return Project
    if name in _TRACKING:
        from mlcycle.train import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'mlcycle' has no attribute {name!r}")


# Experiment tracking (mlcycle.start_run() etc.), from mlcycle.train.tracking.
_TRACKING = (
    "start_run",
    "end_run",
    "active_run",
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "log_artifact",
    "set_tag",
    "set_tags",
    "search_runs",
    "get_run",
    "flush",
)

__all__ = ["Project", "__version__", *_TRACKING]
