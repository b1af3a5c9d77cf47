"""mlcycle: one tool for the whole life of a tabular ML model.

Example:
    >>> import mlcycle
    >>> report = mlcycle.Project.load("mlcycle.yaml").run()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlcycle.pipeline.project import Project


def __getattr__(name: str) -> Any:
    # Imported lazily so `import mlcycle` stays cheap for the CLI and the server.
    if name == "Project":
        from mlcycle.pipeline.project import Project

        return Project
    raise AttributeError(f"module 'mlcycle' has no attribute {name!r}")


__all__ = ["Project", "__version__"]
