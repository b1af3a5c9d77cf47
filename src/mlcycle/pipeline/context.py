"""What a step sees of the project it runs in: the spec, the catalog, the run.

A step receives a :class:`RunContext`, not the :class:`~mlcycle.pipeline.project.Project`:
the project is the entry point that builds the context and starts the runner,
so neither the runner nor a step imports it back.

Example:
    >>> ctx = project.context()
    >>> ctx.catalog.dataset(dataset_id).rows
    336776
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from mlcycle.pipeline.catalog import Catalog
from mlcycle.spec import Spec
from mlcycle.store import Store

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.registry.models import Registry
    from mlcycle.spec.loop import TrainingWindow


@dataclass
class RunContext:
    """The spec and where the project lives, its store and catalog, and the run in progress."""

    spec: Spec
    base_dir: Path
    schema_path: Path
    store: Store
    git_sha: str | None
    run_id: str | None = None
    # Set by the loop: train on the most recent data only (the split step restricts it).
    window: TrainingWindow | None = None

    @property
    def name(self) -> str:
        return self.spec.project

    def window_key(self) -> str:
        """The loop's training window for a cache key ("" when every row is used)."""
        w = self.window
        if w is None or (w.last_days is None and w.last_rows is None):
            return ""
        return f"window:{w.last_days}:{w.last_rows}"

    def in_window(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of a dataset version the run trains on: the loop's window, else all."""
        if self.window is None or not self.window_key():
            return frame
        from mlcycle.prep import recent_rows

        return recent_rows(
            frame,
            timestamp=self.spec.problem.timestamp_column,
            last_days=self.window.last_days,
            last_rows=self.window.last_rows,
        )

    @property
    def catalog(self) -> Catalog:
        return Catalog(self.store)

    @property
    def registry(self) -> Registry:
        from mlcycle.registry.models import Registry

        return Registry(self.store)

    def context(self) -> RunContext:
        return self


class HasContext(Protocol):
    """Anything that can give a run context: a project, or a context itself."""

    def context(self) -> RunContext: ...
