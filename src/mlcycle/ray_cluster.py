"""Joining a Ray cluster: the one place mlcycle imports ``ray`` (an optional extra).

Ray is only needed for ``predict --engine ray`` and ``train.tuning.backend: ray``;
the base install never imports it, so every caller goes through
:func:`require_ray` (a clear "install mlcycle[ray]" instead of an
``ImportError``) and :func:`connected` (the cluster at ``RAY_ADDRESS``, else a
local one started for the job and stopped after it). Serve and train both use
it, so it lives below both stages.

An unreachable ``RAY_ADDRESS`` makes ``ray.init`` retry for minutes, so the
address is first probed with a plain TCP connect and refused at once.

Example:
    >>> with connected() as ray:
    ...     ray.get(ray.put(1))
    1
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from mlcycle.errors import BadInput

ADDRESS_ENV = "RAY_ADDRESS"
# How long the reachability probe of RAY_ADDRESS waits for a TCP connection.
PROBE_SECONDS = 3.0


def require_ray() -> Any:
    """The ``ray`` module, or :class:`BadInput` saying how to install it.

    Example:
        >>> ray = require_ray()
    """
    try:
        import ray
    except ImportError as exc:
        raise BadInput(
            "Ray is not installed",
            f"this needs the optional Ray extra ({type(exc).__name__}: {exc})",
            "install mlcycle[ray] (pip install 'mlcycle[ray]'), or use the local engine/backend",
        ) from None
    return ray


def check_reachable(address: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) nobody answers on, within seconds.

    ``auto`` and ``local`` are left to Ray (they look for a cluster on this
    machine and fail fast).

    Example:
        >>> check_reachable("127.0.0.1:1")   # raises BadInput naming the address
    """
    target = address.removeprefix("ray://")
    if target in ("auto", "local") or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            return
    except (OSError, ValueError) as exc:
        raise BadInput(
            f"cannot reach the Ray cluster at {ADDRESS_ENV}={address}",
            f"{type(exc).__name__}: {exc}",
            f"start the cluster (ray start --head) or fix {ADDRESS_ENV}; unset it to run on a "
            "local cluster started for this job",
        ) from None


@contextlib.contextmanager
def connected(num_cpus: int | None = None) -> Iterator[Any]:
    """Yield ``ray`` connected to a cluster; stop the cluster afterwards if it started it here.

    Already initialised (a test session, a notebook): used as is. ``RAY_ADDRESS``
    set: joined (after :func:`check_reachable`). Else a local cluster with
    ``num_cpus`` CPUs (default: every core), no dashboard.

    Example:
        >>> with connected(num_cpus=2) as ray:
        ...     int(ray.cluster_resources()["CPU"])
        2
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = os.environ.get(ADDRESS_ENV) or None
    if address is not None:
        check_reachable(address)
    try:
        if address is not None:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(
                address="local",  # a new cluster, never one a `ray start` left running
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
    except ConnectionError as exc:
        raise BadInput(
            f"cannot join the Ray cluster at {ADDRESS_ENV}={address}",
            str(exc),
            f"start the cluster (ray start --head) or fix {ADDRESS_ENV}",
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_cpus(ray: Any) -> int:
    """The cluster's CPUs (at least 1).

    Example:
        >>> cluster_cpus(ray)
        2
    """
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
