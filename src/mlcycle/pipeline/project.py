"""A project: a spec file, the folder it lives in, and its store.

The entry point of the lifecycle: it builds the :class:`RunContext` the steps
receive and runs :data:`~mlcycle.pipeline.steps.LIFECYCLE` through the runner.
Nothing below it imports it.

Example:
    >>> project = Project.load("mlcycle.yaml")
    >>> report = project.run()
    >>> report.status
    'succeeded'
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from mlcycle.gitinfo import git_state
from mlcycle.spec import Spec
from mlcycle.store import Store

if TYPE_CHECKING:
    # Imported where used: loading a project for `mlcycle models list` should not pay
    # for pandas and the pipeline.
    from mlcycle.pipeline.catalog import Catalog
    from mlcycle.pipeline.context import RunContext
    from mlcycle.pipeline.runner import Listener, RunReport
    from mlcycle.registry.models import Registry, ResolvedVersion
    from mlcycle.spec.loop import TrainingWindow

SPEC_FILE = "mlcycle.yaml"


class Project:
    """A spec and its store: load it, run the lifecycle, resolve its models.

    Example:
        >>> project = Project.load("examples/flights")
        >>> version, folder = project.bundle("flights@champion")
    """

    def __init__(self, spec_path: Path, spec: Spec) -> None:
        self.spec_path = spec_path.resolve()
        self.base_dir = self.spec_path.parent
        self.spec = spec
        self._store: Store | None = None
        self.run_id: str | None = None  # the latest pipeline run started from this object

    @classmethod
    def load(cls, path: str | Path = SPEC_FILE) -> Project:
        """Load the project whose spec is ``path`` (a file, or a folder holding mlcycle.yaml)."""
        spec_path = Path(path)
        if spec_path.is_dir():
            spec_path = spec_path / SPEC_FILE
        return cls(spec_path, Spec.load(spec_path))

    @property
    def name(self) -> str:
        return self.spec.project

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.base_dir)
        return self._store

    @property
    def catalog(self) -> Catalog:
        """Typed access to the project's artifacts."""
        from mlcycle.pipeline.catalog import Catalog

        return Catalog(self.store)

    def context(self) -> RunContext:
        """A fresh run context: what a step (or a stage helper) sees of this project."""
        from mlcycle.pipeline.context import RunContext

        return RunContext(
            spec=self.spec,
            base_dir=self.base_dir,
            schema_path=self.schema_path,
            store=self.store,
            git_sha=self.git_sha,
        )

    @property
    def registry(self) -> Registry:
        from mlcycle.registry.models import Registry

        return Registry(self.store)

    @property
    def schema_path(self) -> Path:
        return self.base_dir / self.spec.data.schema_file

    @functools.cached_property
    def git_sha(self) -> str | None:
        """The commit of the project folder, with ``-dirty`` if it has uncommitted changes."""
        sha, dirty = git_state(str(self.base_dir))
        if sha is None:
            return None
        return f"{sha}-dirty" if dirty else sha

    def run(
        self,
        *,
        until: str | None = None,
        force: bool = False,
        listener: Listener | None = None,
        window: TrainingWindow | None = None,
    ) -> RunReport:
        """Run the lifecycle pipeline, reusing every step whose inputs did not change.

        ``window`` (the loop's ``loop.window``) restricts the rows split and trained
        on to the most recent days or rows of the dataset version.
        """
        from mlcycle.pipeline.runlog import RunLog
        from mlcycle.pipeline.runner import Runner
        from mlcycle.pipeline.steps import LIFECYCLE
        from mlcycle.train.tracking import reap_dead_runs

        # Runs left `running` by a process that died (kill -9) are marked killed.
        RunLog(self.store).reap()
        reap_dead_runs(self.store)
        ctx = self.context()
        ctx.window = window
        try:
            return Runner(ctx, LIFECYCLE).run(until=until, force=force, listener=listener)
        finally:
            self.run_id = ctx.run_id

    def bundle(self, ref: str) -> tuple[ResolvedVersion, Path]:
        """Resolve a model reference and return the local folder of its bundle."""
        resolved = self.registry.resolve(ref)
        return resolved, self.store.path(resolved.bundle_id)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
