"""What the service serves right now, and how it changes without downtime.

A :class:`Deployment` is immutable: the champion, an optional challenger,
the canary share and the shadow flag. Each request reads
``swapper.deployment`` once and keeps that object, so replacing it (one
attribute assignment) switches new requests atomically while in-flight
requests finish on the model they started with. :class:`Swapper` polls a
resolver (built by the CLI from the project's registry: serve never imports
the registry) and loads a moved alias *beside* the old model before
switching; a version that fails to load is logged and the old one stays.

Example:
    >>> swapper = Swapper(Deployment.start(runtime), resolver=lambda role: (4, folder))
    >>> swapper.check()["champion_version"]
    4
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from mlcycle.errors import BadInput
from mlcycle.serve.http.batching import MicroBatcher
from mlcycle.serve.http.metrics import Metrics
from mlcycle.serve.http.parsing import RecordsDecoder
from mlcycle.serve.http.parsing_mlflow import InvocationsDecoder
from mlcycle.serve.model import ModelRuntime, refreeze
from mlcycle.serve.predlog import ModelInfo

logger = logging.getLogger("mlcycle.serve")

# role ("champion" or "challenger") -> (version, bundle folder), or None when unset.
Resolver = Callable[[str], tuple[int, Path] | None]
Loader = Callable[[Path, int], ModelRuntime]
# Requests on the replaced model finish well within this; then its objects can be freed.
_REFREEZE_AFTER_SECONDS = 5.0


@dataclass(frozen=True)
class Served:
    """A loaded runtime with its own micro-batcher, what the log says of it, and the
    decoders the log parses its request bodies back with (by protocol)."""

    runtime: ModelRuntime
    batcher: MicroBatcher
    info: ModelInfo
    decoders: Mapping[str, RecordsDecoder]

    @classmethod
    def of(cls, runtime: ModelRuntime, max_rows: int, metrics: Metrics | None) -> Served:
        """The runtime ready to serve.

        Example:
            >>> Served.of(runtime, 2048, Metrics()).info.name
            'flights'
        """
        on_batch = metrics.observe_batch if metrics is not None else None
        decoders = {
            "predict": RecordsDecoder(runtime, "predict"),
            "infer": RecordsDecoder(runtime, "infer"),
            "invocations": InvocationsDecoder(runtime, "invocations"),
        }
        batcher = MicroBatcher(runtime, max_rows, on_batch)
        return cls(runtime, batcher, ModelInfo.of(runtime), decoders)


@dataclass(frozen=True)
class Deployment:
    champion: Served
    challenger: Served | None = None
    canary: float = 0.0
    shadow: bool = False

    @classmethod
    def start(
        cls,
        champion: ModelRuntime,
        challenger: ModelRuntime | None = None,
        canary: float = 0.0,
        shadow: bool = False,
        max_rows: int = 2048,
        metrics: Metrics | None = None,
    ) -> Deployment:
        _check_share(canary)
        return cls(
            Served.of(champion, max_rows, metrics),
            None if challenger is None else Served.of(challenger, max_rows, metrics),
            canary,
            shadow,
        )

    def pick(self) -> tuple[Served, str]:
        """Who answers this request: the challenger for the canary share, else the champion."""
        if self.challenger is not None and self.canary > 0 and random.random() < self.canary:
            return self.challenger, "challenger"
        return self.champion, "champion"

    def versions(self) -> dict[str, int | None]:
        """The version served per role (``challenger``: ``None`` without one).

        Example:
            >>> deployment.versions()
            {'champion': 3, 'challenger': None}
        """
        challenger = None if self.challenger is None else self.challenger.runtime.version
        return {"champion": self.champion.runtime.version, "challenger": challenger}

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.champion.runtime.meta.name,
            "champion_version": self.champion.runtime.version,
            "challenger_version": None
            if self.challenger is None
            else self.challenger.runtime.version,
            "canary": self.canary,
            "shadow": self.shadow,
            "engine": self.champion.runtime.engine,
        }


class Swapper:
    """Holds the current :class:`Deployment`; polls the resolver and swaps moved aliases in."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        resolver: Resolver | None = None,
        poll_seconds: float = 5.0,
        metrics: Metrics | None = None,
        max_batch_rows: int = 2048,
        loader: Loader | None = None,
    ) -> None:
        self.deployment = deployment
        self.resolver = resolver
        self.poll_seconds = poll_seconds
        self.metrics = metrics
        self.max_batch_rows = max_batch_rows
        self.loader: Loader = loader or (lambda folder, version: ModelRuntime.load(folder, version))
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._refreeze: threading.Timer | None = None
        if metrics is not None:
            # Every worker says what it serves, so any worker's scrape can tell.
            metrics.set_versions(deployment.versions())

    def start(self) -> None:
        if self.resolver is not None and self.poll_seconds > 0:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # A stopped server leaves the process's collector alone (an embedding program,
        # the next app in a test process): a pending re-freeze would unfreeze it later.
        if self._refreeze is not None:
            self._refreeze.cancel()
            self._refreeze = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await run_in_threadpool(self.check)
            except Exception as exc:  # a registry hiccup must not stop serving
                logger.warning("checking the registry for a new model failed: %s", exc)

    def check(self) -> dict[str, Any]:
        """Resolve the aliases now; load and switch to whatever moved. Returns the deployment."""
        if self.resolver is None:
            raise BadInput(
                "nothing to reload",
                "the server was started from a bundle folder or a fixed version, not an alias",
                "serve an alias (mlcycle serve models:/NAME@champion) to follow it",
            )
        with self._lock:
            current = self.deployment
            new = current
            target = self.resolver("champion")
            if target is not None and target[0] != current.champion.runtime.version:
                new = replace(new, champion=self._load(target))
            if current.challenger is not None or current.canary > 0 or current.shadow:
                wanted = self.resolver("challenger")
                if wanted is None:
                    new = replace(new, challenger=None)
                elif current.challenger is None or wanted[0] != current.challenger.runtime.version:
                    new = replace(new, challenger=self._load(wanted))
            self._switch(current, new)
            return self.deployment.describe() | {"changed": new is not current}

    def set_traffic(self, canary: float, shadow: bool) -> dict[str, Any]:
        """Change the canary share and the shadow flag (loading the challenger if needed)."""
        _check_share(canary)
        with self._lock:
            current = self.deployment
            new = replace(current, canary=canary, shadow=shadow)
            if (canary > 0 or shadow) and new.challenger is None:
                wanted = self.resolver("challenger") if self.resolver is not None else None
                if wanted is None:
                    raise BadInput(
                        "there is no challenger to send traffic to",
                        "canary and shadow need a model version with the alias 'challenger'",
                        "promote one first: mlcycle models promote NAME VERSION --alias challenger",
                    )
                new = replace(new, challenger=self._load(wanted))
            self._switch(current, new)
            return new.describe()

    def _load(self, target: tuple[int, Path]) -> Served:
        version, folder = target
        runtime = self.loader(folder, version)
        return Served.of(runtime, self.max_batch_rows, self.metrics)

    def _switch(self, current: Deployment, new: Deployment) -> None:
        if new is current:
            return
        self.deployment = new  # one assignment: atomic for every request that starts later
        if gc.get_freeze_count():
            # The app froze the heap (serve/model/gctune.py): once in-flight requests on the
            # old model are done, let it go and freeze the new one.
            if self._refreeze is not None:
                self._refreeze.cancel()  # one re-freeze after the latest swap is enough
            self._refreeze = threading.Timer(_REFREEZE_AFTER_SECONDS, refreeze)
            self._refreeze.daemon = True
            self._refreeze.start()
        if self.metrics is not None and (
            new.champion is not current.champion or new.challenger is not current.challenger
        ):
            self.metrics.swaps += 1
        if self.metrics is not None:
            self.metrics.set_versions(new.versions())
        logger.info("now serving %s", new.describe())


def _check_share(canary: float) -> None:
    if not isinstance(canary, int | float) or isinstance(canary, bool) or not 0 <= canary <= 1:
        raise BadInput(
            f"canary share must be a number from 0 to 1, got {canary!r}",
            "it is the share of requests the challenger answers",
            "pass e.g. 0.1 for 10%",
        )
