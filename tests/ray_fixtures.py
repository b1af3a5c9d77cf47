"""The test session's one local Ray cluster: the ``ray_cluster`` fixture.

Started once per pytest process on first use: 2 CPUs, no dashboard, a small
object store, and stopped at the end of the session. The suite runs with
``pytest -n auto --dist loadfile`` and every Ray test lives in
``tests/integration/test_ray.py``, so all of them run in one worker and share
this cluster. mlcycle's Ray code sees ``ray.is_initialized()`` and joins
it instead of starting its own.

Registered once, by ``tests/conftest.py`` (imported into two test modules it
would be two fixtures, and the second ``ray.init`` would fail).

Example:
    @pytest.mark.ray
    def test_something(ray_cluster: Any) -> None: ...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

RAY_CPUS = 2
OBJECT_STORE_BYTES = 200 * 1024 * 1024


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """``ray``, initialised on a local cluster for the whole session."""
    ray = pytest.importorskip("ray")
    # A developer's RAY_ADDRESS must not send the tests to their cluster.
    saved = os.environ.pop("RAY_ADDRESS", None)
    ray.init(
        address="local",  # a new cluster, never one a `ray start` left on this machine
        num_cpus=RAY_CPUS,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        if saved is not None:
            os.environ["RAY_ADDRESS"] = saved
